"""The ``cifar-exp`` console script: ``cifar-exp [overrides]`` trains like ``python -m cifar_exp``;
``cifar-exp ui`` serves the MLflow UI over the default store; ``cifar-exp report <experiment>`` compares."""

from __future__ import annotations

import argparse
import os
import sys

from cifar_exp.config import PROJECT_ROOT


def ui(argv: list[str]) -> None:
    """Serve the MLflow UI on 127.0.0.1 over a store (the project's default one unless told)."""
    parser = argparse.ArgumentParser(prog="cifar-exp ui", description=ui.__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--backend-store-uri", default=f"sqlite:///{PROJECT_ROOT}/mlruns/mlflow.db")
    args = parser.parse_args(argv)
    (PROJECT_ROOT / "mlruns").mkdir(exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", args.backend_store_uri,
               "--host", args.host, "--port", str(args.port)]
    # MLflow 3 also starts GenAI job workers (huey) with its server; browsing runs needs none of them.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    print(f"MLflow UI on http://{args.host}:{args.port} over {args.backend_store_uri}", flush=True)
    os.execv(sys.executable, command)


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["ui"]:
        ui(argv[1:])
    elif argv[:1] == ["report"]:
        from cifar_exp.report import main as report_main

        report_main(argv[1:])
    else:
        from cifar_exp.__main__ import main as train_main

        train_main()
