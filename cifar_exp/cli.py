"""The ``cifar-exp`` console script: ``cifar-exp [train] [overrides]`` trains like ``python -m cifar_exp``;
``cifar-exp ui`` serves the MLflow UI over the project's store; ``cifar-exp report <experiment>`` compares
an experiment's sweeps with the report's figures; ``cifar-exp records export|import`` carries runs between stores
as files; ``predict``, ``evaluate`` and ``register`` use the models
the runs logged."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from cifar_exp import signals
from cifar_exp.config import default_store_uri
from cifar_exp.errors import CifarExpError, store_failed, store_failure


def ui(args: argparse.Namespace) -> None:
    """Serve the MLflow UI on 127.0.0.1 over a store (the project's default one unless told); once the server
    answers, print the address of the experiment's runs table in the model-training view."""
    from cifar_exp.ui import serve

    serve(args.host, args.port, args.backend_store_uri, args.experiment, args.start_timeout, args.workers)


def _quiet() -> None:
    """TensorFlow's C++ start-up chatter and MLflow's download progress bars stay out of a command's output."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def predict(args: argparse.Namespace) -> None:
    """Print the top-5 classes of each image."""
    from cifar_exp.predict import predict as top5

    _quiet()
    print(top5(args.model, args.images, args.tracking_uri, args.json))


def evaluate(args: argparse.Namespace) -> None:
    """Evaluate a model on a dataset's test split, as an evaluation run; a stop signal ends that run KILLED."""
    from cifar_exp.model_evaluation import evaluate_model

    _quiet()
    signals.install()
    outcome = None
    try:
        outcome = evaluate_model(args.model, args.overrides)
        with signals.deferred():  # the run is FINISHED: its outcome is said whole, whatever arrives now
            print(f"{outcome.source}: " + ", ".join(f"{k} {v:.4f}" for k, v in outcome.metrics.items()))
            if outcome.run_id:
                print(f"evaluation run {outcome.run_id}")
    except signals.Stopped as stop:
        if stop.run_id:
            stop.details.append(f"evaluation run {stop.run_id} {stop.run_state}; the same command evaluates again")
        elif outcome is not None:
            stop.details.append(f"evaluation run {outcome.run_id} had FINISHED just before it")
        print(f"error: {stop.explain()}", file=sys.stderr)
        signals.exit(stop.exit_status)


def register(args: argparse.Namespace) -> None:
    """Register a run's logged model under a name, with an alias."""
    from cifar_exp.tracking import client_for, prepare_store
    from cifar_exp.tracking.registry import register_run

    prepare_store(args.tracking_uri, setting="--tracking-uri")
    done = register_run(client_for(args.tracking_uri), args.run_id, args.name, args.alias or None)
    print(f"run {done.run_id} is version {done.version} of {done.name}; load it with {done.uri}")


def report(args: argparse.Namespace) -> None:
    """Hand the arguments to ``python -m cifar_exp.report``."""
    from cifar_exp.report import main as report_main

    report_main(args.args)


def records(args: argparse.Namespace) -> None:
    """Hand the arguments to ``python -m cifar_exp.records``."""
    from cifar_exp.records import main as records_main

    records_main(args.args)


def train(args: argparse.Namespace) -> None:
    """Hand the overrides to Hydra, as ``python -m cifar_exp`` does."""
    from cifar_exp.__main__ import run

    sys.argv = [sys.argv[0], *args.args]
    run()


def parser() -> argparse.ArgumentParser:
    """The sub-commands; a command line that names none trains. ``train`` and ``report`` hand their arguments
    on untouched (to Hydra, to the report's own parser)."""
    top = argparse.ArgumentParser(
        prog="cifar-exp",
        description="Train the 2017 CIFAR-100 report's experiments (the default command: Hydra overrides, as "
        "python -m cifar_exp), judge them against the report, browse the runs, and use the models they logged.",
    )
    commands = top.add_subparsers(dest="command", required=True)
    trainer = commands.add_parser(
        "train", help="train (the default): cifar-exp [train] [Hydra overrides]", add_help=False
    )
    trainer.set_defaults(run=train)
    viewer = commands.add_parser("ui", help=ui.__doc__, description=ui.__doc__)
    viewer.add_argument("--port", type=int, default=5000, help="the port to serve on (default 5000)")
    viewer.add_argument(
        "--host", default="127.0.0.1", help="the address to serve on (default 127.0.0.1: this machine only)"
    )
    viewer.add_argument(
        "--backend-store-uri", default=default_store_uri(), help=f"the store to browse (default {default_store_uri()})"
    )
    viewer.add_argument("--experiment", default=None, help="whose runs table to print (default: tracking.experiment)")
    viewer.add_argument(
        "--start-timeout", type=float, default=120, help="seconds the server may take to answer (default 120)"
    )
    viewer.add_argument(
        "--workers", type=int, default=1, help="the server's worker processes (default 1: one person browsing)"
    )
    viewer.set_defaults(run=ui)
    reporter = commands.add_parser(
        "report", help="judge an experiment against the report: cifar-exp report <name>", add_help=False
    )
    reporter.set_defaults(run=report)
    recorder = commands.add_parser(
        "records",
        help="carry runs between stores as files: cifar-exp records export|import [folder]",
        add_help=False,
    )
    recorder.set_defaults(run=records)
    model_help = "models:/<name>@best, models:/<name>/<version>, runs:/<run id>/report_cnn, a run id, or a .h5 file"
    predictor = commands.add_parser(
        "predict",
        help="top-5 classes of images: cifar-exp predict <model> <images...>",
        description="Print each image's five likeliest classes with their superclass and probability. PNG/JPEG "
        "files of another size than 32x32 are cropped to their largest centred square and resized to "
        "32x32 (Lanczos); an .npz gives its array x (or its only array) of uint8 images (N, 32, 32, 3).",
    )
    predictor.add_argument("model", help=model_help)
    predictor.add_argument("images", nargs="+", help="PNG/JPEG files or .npz arrays")
    predictor.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predictor.add_argument("--tracking-uri", default=default_store_uri(), help="the store models:/ and run ids are in")
    predictor.set_defaults(run=predict)
    evaluator = commands.add_parser(
        "evaluate",
        help="test metrics of a model on a dataset: cifar-exp evaluate <model> [data.* overrides]",
        description="Test metrics, confusion matrices and the per-class report of a model on the test split of any "
        "dataset the loader reads (data.* overrides as for training, e.g. data=local "
        "data.path=<copy>), logged as an evaluation run linked to the model (tracking.* overrides).",
    )
    evaluator.add_argument("model", help=model_help)
    evaluator.add_argument("overrides", nargs="*", help="data.* and tracking.* overrides")
    evaluator.set_defaults(run=evaluate)
    registrar = commands.add_parser(
        "register",
        help="register a run's model: cifar-exp register <run id> --name N",
        description="Register a run's logged model under a name and point an alias "
        "at it, so models:/<name>@<alias> loads it.",
    )
    registrar.add_argument("run_id")
    registrar.add_argument("--name", required=True, help="the registered model's name")
    registrar.add_argument("--alias", default="best", help="the alias to point at it ('' for none; default best)")
    registrar.add_argument("--tracking-uri", default=default_store_uri())
    registrar.set_defaults(run=register)
    return top


def commands(top: argparse.ArgumentParser) -> list[str]:
    """The sub-commands ``top`` knows: anything else on the command line is a training's Hydra overrides."""
    (sub,) = [action for action in top._actions if isinstance(action, argparse._SubParsersAction)]
    return list(sub.choices)


PASS_THROUGH = {"train", "report", "records"}  # their arguments belong to Hydra, and to those modules' parsers


def main(argv: Optional[list[str]] = None) -> None:
    """The ``cifar-exp`` console script: a sub-command, or ``train`` when none is named."""
    argv = sys.argv[1:] if argv is None else argv
    top = parser()
    if not argv or argv[0] not in {*commands(top), "-h", "--help"}:
        argv = ["train", *argv]
    if argv[0] in PASS_THROUGH:
        args = top.parse_args(argv[:1])
        args.args = argv[1:]
    else:
        args = top.parse_args(argv)
    try:
        args.run(args)
        signals.done()
    except CifarExpError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        failed = store_failure(error)
        if failed is None:
            raise
        afterwards = (
            "any run this command had opened is FAILED where the store could still be written (else the next "
            "command on the store marks it KILLED); the same command runs again once the store answers and can be "
            "written."
        )
        print(f"error: {store_failed(failed, None, afterwards)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
