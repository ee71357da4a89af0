"""Compare a report experiment's sweep with the 2017 report's figures, reading only the MLflow store.

``python -m cifar_exp.report decay`` reads every run of experiment ``decay`` (all its sweeps), groups the
finished ones by configuration (what varies between them, and epochs; seeds pooled), and writes a table of measured test
accuracy (mean and spread over seeds) beside the report's figure, plus one plot overlaying every run's
validation-accuracy curve. Both are logged to the latest sweep's parent run; the table is printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Optional

import pandas as pd
from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient

from cifar_exp import plots, tracking
from cifar_exp.config import default_store_uri
from cifar_exp.errors import ReportError

DEFAULT_URI = default_store_uri()
# Not what a sweep compares: seeds are pooled, epochs have their own column, the rest is bookkeeping
# (the data itself is identified by the dataset_fingerprint tag, not by where it was read from).
IGNORED_PARAMS = {"seed", "overrides", "tracking.run_name", "trainer.epochs", "trainer.verbose",
                  "trainer.checkpoint_dir", "data.path", "data.train_images", "data.val_images", "data.test_images"}


def find_sweep(client: MlflowClient, experiment_name: str, store_experiment: str,
               sweep_run_id: Optional[str] = None) -> MlflowRun:
    """The sweep's parent run: the given id, else the latest sweep of ``experiment_name``."""
    if sweep_run_id:
        return client.get_run(sweep_run_id)
    found = client.get_experiment_by_name(store_experiment)
    runs = [] if found is None else client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{tracking.TAG_ROLE}` = 'sweep' and attributes.run_name = 'sweep-{experiment_name}'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise ReportError(f"no sweep of experiment {experiment_name!r} in MLflow experiment {store_experiment!r}; "
                          f"run one with: python -m cifar_exp --multirun +experiment={experiment_name}")
    return runs[0]


def experiment_runs(client: MlflowClient, parent: MlflowRun, experiment_name: str) -> list[MlflowRun]:
    """Every run of the experiment in the parent's MLflow experiment, from all its sweeps: a sweep that
    was re-run skips configurations that already FINISHED, so their runs live under an earlier parent."""
    return client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.experiment = '{experiment_name}'",
                              order_by=["attributes.start_time ASC"], max_results=10000)


def varying_params(runs: list[MlflowRun]) -> list[str]:
    """The params whose values differ between runs (seeds excluded): what the sweep compares. Only keys
    every run has count, so runs logged before a config key was added still compare."""
    keys = sorted(set.intersection(*(set(r.data.params) for r in runs)) - IGNORED_PARAMS)
    return [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]


def comparison_table(runs: list[MlflowRun]) -> pd.DataFrame:
    """One row per configuration: measured test accuracy (mean, std over seeds) beside the report's."""
    finished = [r for r in runs if r.info.status == "FINISHED" and "test_accuracy" in r.data.metrics]
    if not finished:
        raise ReportError("the sweep has no finished run with a test accuracy yet")
    varying = varying_params(finished)
    rows = []
    for r in finished:
        row = {"configuration": ", ".join(f"{k}={r.data.params[k]}" for k in varying) or r.info.run_name,
               "epochs": int(r.data.params.get("trainer.epochs", 0)), "seed": r.data.params.get("seed"),
               # Runs stopped by trainer.max_minutes ran fewer epochs than configured (older runs: all of them).
               "epochs_run": int(r.data.metrics.get("epochs_run", r.data.params.get("trainer.epochs", 0))),
               "test_accuracy": r.data.metrics["test_accuracy"],
               "val_accuracy": r.data.metrics.get("val_accuracy"),
               "epoch_seconds": r.data.metrics.get("epoch_seconds"),
               "report_test_accuracy": float(r.data.tags["report_test_accuracy"])
               if "report_test_accuracy" in r.data.tags else None,
               "report_note": r.data.tags.get("report_note", "")}
        rows.append(row)
    frame = pd.DataFrame(rows)
    table = frame.groupby(["configuration", "epochs"], sort=False).agg(
        runs=("seed", "count"), epochs_run_min=("epochs_run", "min"), epochs_run_max=("epochs_run", "max"),
        test_accuracy_mean=("test_accuracy", "mean"),
        test_accuracy_std=("test_accuracy", "std"), final_val_accuracy=("val_accuracy", "mean"),
        seconds_per_epoch=("epoch_seconds", "mean"), report_test_accuracy=("report_test_accuracy", "first"),
        report_note=("report_note", "first")).reset_index()
    return table


def to_markdown(table: pd.DataFrame, title: str) -> str:
    """The table as GitHub markdown (percentages), written by hand to avoid a tabulate dependency."""
    def pct(value: Optional[float]) -> str:
        return "" if value is None or pd.isna(value) else f"{100 * value:.2f}%"

    lines = [f"### {title}", "",
             "| configuration | epochs run | runs | measured test accuracy | report | report's words | s/epoch |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: |"]
    for row in table.itertuples():
        spread = "" if pd.isna(row.test_accuracy_std) else f" ± {100 * row.test_accuracy_std:.2f}"
        seconds = "" if pd.isna(row.seconds_per_epoch) else f"{row.seconds_per_epoch:.0f}"
        ran = f"{row.epochs_run_min}" if row.epochs_run_min == row.epochs_run_max \
            else f"{row.epochs_run_min}-{row.epochs_run_max}"
        epochs = str(row.epochs) if ran == str(row.epochs) else f"{ran} of {row.epochs}"
        lines.append(f"| {row.configuration} | {epochs} | {row.runs} | {pct(row.test_accuracy_mean)}{spread} "
                     f"| {pct(row.report_test_accuracy)} | {row.report_note} | {seconds} |")
    return "\n".join(lines) + "\n"


def validation_curves(client: MlflowClient, runs: list[MlflowRun]) -> dict[str, list[float]]:
    curves = {}
    for r in runs:
        history = sorted(client.get_metric_history(r.info.run_id, "val_accuracy"), key=lambda m: m.step)
        if history:
            curves[f"{r.info.run_name} [{r.info.status}]" if r.info.status != "FINISHED" else r.info.run_name] = \
                [m.value for m in history]
    return curves


def report(experiment_name: str, uri: str = DEFAULT_URI, store_experiment: str = "cifar_exp",
           sweep_run_id: Optional[str] = None) -> tuple[pd.DataFrame, str]:
    """Build, log (to the sweep's parent run) and return the comparison table and its markdown."""
    client = MlflowClient(uri)
    parent = find_sweep(client, experiment_name, store_experiment, sweep_run_id)
    runs = experiment_runs(client, parent, experiment_name)
    table = comparison_table(runs)
    markdown = to_markdown(table, f"{experiment_name}: measured here vs the 2017 report "
                                  f"(sweep {parent.info.run_id})")
    figure = plots.overlay_curves(validation_curves(client, runs), "val_accuracy",
                                  f"{experiment_name}: validation accuracy per epoch")
    run = tracking.Run(client, parent.info.run_id)
    run.log_figure(figure, "report/val_accuracy_curves.png")
    plots.close(figure)
    run.log_text(markdown, "report/comparison.md")
    run.set_tags({tracking.TAG_NOTE: markdown})
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "comparison.csv"
        table.to_csv(path, index=False)
        run.log_artifact(path, "report")
    return table, markdown


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cifar_exp.report", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", help="a name from experiments/ (learning_rate, dropout, decay, sgd, ...)")
    parser.add_argument("--uri", default=DEFAULT_URI, help="tracking URI (default: the project's store)")
    parser.add_argument("--store-experiment", default="cifar_exp", help="MLflow experiment holding the sweeps")
    parser.add_argument("--sweep", help="the sweep parent run to log the report to (default: the latest one)")
    args = parser.parse_args(argv)
    try:
        _, markdown = report(args.experiment, args.uri, args.store_experiment, args.sweep)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(markdown)


if __name__ == "__main__":
    main()
