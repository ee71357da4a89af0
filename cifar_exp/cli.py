"""The ``cifar-exp`` console script: ``cifar-exp [train] [overrides]`` trains like ``python -m cifar_exp``;
``cifar-exp ui`` serves the MLflow UI over the project's store; ``cifar-exp report <experiment>`` compares
an experiment's sweeps with the report's figures."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Optional

from cifar_exp.config import PROJECT_ROOT, default_store_uri


def ui(args: argparse.Namespace) -> None:
    """Serve the MLflow UI on 127.0.0.1 over a store (the project's default one unless told)."""
    from cifar_exp import tracking
    from cifar_exp.errors import CifarExpError

    try:
        if args.backend_store_uri == default_store_uri():
            (PROJECT_ROOT / "mlruns").mkdir(exist_ok=True)
        tracking.prepare_store(args.backend_store_uri)
        _check_port_free(args.host, args.port)
    except CifarExpError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", args.backend_store_uri,
               "--host", args.host, "--port", str(args.port)]
    # MLflow 3 also starts GenAI job workers (huey) with its server; browsing runs needs none of them.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    print(f"MLflow UI on http://{args.host}:{args.port} over {args.backend_store_uri}", flush=True)
    os.execv(sys.executable, command)


def _check_port_free(host: str, port: int) -> None:
    from cifar_exp.errors import CifarExpError

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CifarExpError(f"cannot serve the UI on {host}:{port} ({error.strerror}): another program (perhaps "
                                f"another MLflow UI) uses that port; choose another, e.g. cifar-exp ui --port "
                                f"{port + 1}.") from error


def report(args: argparse.Namespace) -> None:
    """Hand the arguments to ``python -m cifar_exp.report``."""
    from cifar_exp.report import main as report_main

    report_main(args.args)


def train(args: argparse.Namespace) -> None:
    """Hand the overrides to Hydra, as ``python -m cifar_exp`` does."""
    from cifar_exp.__main__ import run

    sys.argv = [sys.argv[0], *args.args]
    run()


def parser() -> argparse.ArgumentParser:
    """The sub-commands; a command line that names none trains. ``train`` and ``report`` hand their arguments
    on untouched (to Hydra, to the report's own parser)."""
    top = argparse.ArgumentParser(prog="cifar-exp", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)
    trainer = commands.add_parser("train", help="train (the default): cifar-exp [train] [Hydra overrides]",
                                  add_help=False)
    trainer.set_defaults(run=train)
    viewer = commands.add_parser("ui", help=ui.__doc__)
    viewer.add_argument("--port", type=int, default=5000)
    viewer.add_argument("--host", default="127.0.0.1")
    viewer.add_argument("--backend-store-uri", default=default_store_uri())
    viewer.set_defaults(run=ui)
    reporter = commands.add_parser("report", help="judge an experiment against the report: cifar-exp report <name>",
                                   add_help=False)
    reporter.set_defaults(run=report)
    return top


PASS_THROUGH = {"train", "report"}  # their arguments belong to Hydra and to the report's parser


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in {"train", "ui", "report", "-h", "--help"}:
        argv = ["train", *argv]
    top = parser()
    if argv[0] in PASS_THROUGH:
        args = top.parse_args(argv[:1])
        args.args = argv[1:]
    else:
        args = top.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
