"""Judge the report's experiments: what we measured over seeds beside the 2017 report's figures, with a verdict.

``python -m cifar_exp.report decay`` reads every run of experiment ``decay`` (all its sweeps) and groups the
finished ones by configuration (what varies between them, and epochs; seeds pooled). Per group: mean test
accuracy with its 95% Student-t interval over seeds (``scipy.stats.t``), the report's figure, a verdict
(reproduced: the figure inside the interval; higher or lower by so many points; no figure; 1 seed: no
interval), mean test loss beside the report's, and whether the group falls short of the report's protocol
(fewer than 3 seeds, fewer epochs than the report ran; nothing is extrapolated). The table, the verdicts (tag
``verdict``) and the validation curves with the report's own printed epochs as points are logged to the
experiment's latest sweep parent run; the table is printed.

``python -m cifar_exp.report --all`` (or ``cifar-exp report all``) does that for every experiment in the store,
then logs one table of the whole report and one figure (measured means with their intervals, the report's
figures marked) to a new run named ``report-all`` (tag ``cifar_exp.role=report``), one per invocation.

The report's figures come from one place: each experiment's ``report_figures`` in ``experiments/<name>.yaml``
(matched against a run's params); its printed per-epoch lines from ``cifar_exp/report_figures/``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from mlflow.entities import Run as MlflowRun
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from cifar_exp import plots, tracking
from cifar_exp.config import default_store_uri, is_bookkeeping, options
from cifar_exp.errors import CifarExpError, ReportError
from cifar_exp.reported import REPORT_ORDER, experiment_spec, printed_epochs, report_figure
from cifar_exp.verdicts import CONFIDENCE, shortfall, t_interval, verdict, verdict_counts

DEFAULT_URI = default_store_uri()
ALL_RUN_NAME = "report-all"
TAG_VERDICT = "verdict"
MAX_NOTE = 8000  # MLflow's limit on a tag value (the run description is a tag)
# Not what a sweep compares: seeds are pooled, epochs have their own column, the rest is bookkeeping (the data
# itself is identified by the dataset_fingerprint tag, not by where it was read from; a time budget shows as
# the epochs a run got through).
COMPARED_ELSEWHERE = {
    "seed",
    "overrides",
    "trainer.epochs",
    "trainer.max_minutes",
    "data.path",
    "data.train_images",
    "data.val_images",
    "data.test_images",
}
METHOD = (
    f"Test accuracy: mean over seeds with its {CONFIDENCE:.0%} Student-t interval (scipy.stats.t, n-1 degrees "
    "of freedom). Verdict: **reproduced** when the report's figure lies inside the interval, else **higher** "
    "or **lower** by the mean minus the report's figure, in percentage points; **no figure** where the report "
    "gives none; **1 seed: no interval**. Groups with fewer than 3 seeds or fewer epochs than the report ran "
    "are flagged, not extrapolated."
)


# Runs out of the store


def find_sweep(
    client: MlflowClient, experiment_name: str, store_experiment: str, sweep_run_id: Optional[str] = None
) -> MlflowRun:
    """The sweep's parent run: the given id, else the latest sweep of ``experiment_name``."""
    if sweep_run_id:
        try:
            parent = client.get_run(sweep_run_id)
        except MlflowException as error:
            raise ReportError(f"--sweep {sweep_run_id}: no such run in the store ({error.message}).") from error
        if parent.data.tags.get(tracking.TAG_ROLE) != "sweep":
            raise ReportError(
                f"--sweep {sweep_run_id}: run {parent.info.run_name!r} is not a sweep's parent run; "
                "give the id of a run named sweep-<experiment>, or leave --sweep out."
            )
        return parent
    found = client.get_experiment_by_name(store_experiment)
    runs = (
        []
        if found is None
        else client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.`{tracking.TAG_ROLE}` = 'sweep' and attributes.run_name = 'sweep-{experiment_name}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    )
    if not runs:
        raise ReportError(
            f"no sweep of experiment {experiment_name!r} in MLflow experiment {store_experiment!r}; "
            f"run one with: python -m cifar_exp --multirun +experiment={experiment_name}"
        )
    return runs[0]


class Stores:
    """The store the report is logged to, and any further stores whose runs join its tables read-only.

    A lent GPU machine or a colleague's laptop keeps its own SQLite store; ``--also-from`` pools their runs
    with this one's (same configuration, same seed: the longest run counts) without copying them over. A
    sweep's table and verdict go to the newest sweep parent among the stores, in the store that holds it.
    """

    def __init__(self, uri: str, also_from: tuple[str, ...] = ()):
        self.uri = uri
        self.client = MlflowClient(uri)
        self.clients = [self.client, *(MlflowClient(other) for other in also_from)]
        self._owner: dict[str, MlflowClient] = {}

    def runs(
        self, store_experiment: str, experiment_name: Optional[str] = None, primary_experiment: Optional[str] = None
    ) -> list[MlflowRun]:
        """Every run of report experiment ``experiment_name`` (None: of every one) in every store, oldest first;
        ``primary_experiment``: the MLflow experiment to read in the first store, if not ``store_experiment``."""
        found: list[MlflowRun] = []
        for client in self.clients:
            name = primary_experiment if primary_experiment and client is self.client else store_experiment
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                continue
            for run in experiment_runs(client, experiment.experiment_id, experiment_name):
                self._owner[run.info.run_id] = client
                found.append(run)
        return sorted(found, key=lambda r: r.info.start_time or 0)

    def metric_history(self, run_id: str, metric: str) -> list[Any]:
        """A run's per-step values of ``metric``, from whichever store holds the run."""
        return self._owner.get(run_id, self.client).get_metric_history(run_id, metric)

    def sweep(self, experiment_name: str, store_experiment: str) -> tuple[MlflowClient, MlflowRun]:
        """The newest sweep parent of ``experiment_name`` among the stores, with the client of its store."""
        parents, errors = [], []
        for client in self.clients:
            try:
                parents.append((client, find_sweep(client, experiment_name, store_experiment)))
            except ReportError as error:
                errors.append(error)
        if not parents:
            raise errors[0]
        return max(parents, key=lambda found: found[1].info.start_time or 0)


def experiment_runs(client: MlflowClient, experiment_id: str, experiment_name: Optional[str] = None) -> list[MlflowRun]:
    """Every run of report experiment ``experiment_name`` (None: of every one) in an MLflow experiment, from
    all their sweeps: a sweep that was re-run skips configurations that already FINISHED, so their runs live
    under an earlier parent."""
    condition = f"= '{experiment_name}'" if experiment_name else "LIKE '%'"
    return client.search_runs(
        [experiment_id],
        filter_string=f"tags.experiment {condition}",
        order_by=["attributes.start_time ASC"],
        max_results=50000,
    )


def varying_params(runs: list[MlflowRun]) -> list[str]:
    """The params whose values differ between runs (seeds excluded): what the sweep compares. Only keys
    every run has count, so runs logged before a config key was added still compare."""
    keys = sorted(
        k for k in set.intersection(*(set(r.data.params) for r in runs)) - COMPARED_ELSEWHERE if not is_bookkeeping(k)
    )
    return [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]


def _label(run: MlflowRun, varying: list[str]) -> str:
    if varying:
        return ", ".join(f"{k}={run.data.params[k]}" for k in varying)
    return re.sub(r"-s\d+$", "", run.info.run_name or "")  # one configuration: its run name, seeds pooled


def comparison_table(runs: list[MlflowRun], experiment_name: Optional[str] = None) -> pd.DataFrame:
    """One row per configuration and length: test accuracy (mean, std, interval over seeds) and loss beside
    the report's figures, the verdict and what falls short of the report's protocol."""
    finished = [r for r in runs if r.info.status == "FINISHED" and "test_accuracy" in r.data.metrics]
    if not finished:
        raise ReportError("the sweep has no finished run with a test accuracy yet")
    name = experiment_name or finished[0].data.tags.get("experiment", "")
    spec = experiment_spec(name)
    varying = varying_params(finished)
    frame = pd.DataFrame(
        [
            {
                "configuration": _label(r, varying),
                "epochs": int(r.data.params.get("trainer.epochs", 0)),
                "seed": r.data.params.get("seed"),
                # Runs stopped by trainer.max_minutes ran fewer epochs than configured (older runs: all of them).
                "epochs_run": int(r.data.metrics.get("epochs_run", r.data.params.get("trainer.epochs", 0))),
                "test_accuracy": r.data.metrics["test_accuracy"],
                "test_loss": r.data.metrics.get("test_loss", math.nan),
                "val_accuracy": r.data.metrics.get("val_accuracy", math.nan),
                "epoch_seconds": r.data.metrics.get("epoch_seconds", math.nan),
                **{f"report_{key}": value for key, value in report_figure(spec, r).items()},
            }
            for r in finished
        ]
    )
    # One run per seed: where a seed ran more than once (a re-run under another time budget), the longest counts.
    frame = frame.loc[
        frame.groupby(["configuration", "epochs", "seed"], sort=False)["epochs_run"].idxmax()
    ].sort_index()
    rows = []
    for (configuration, epochs), group in frame.groupby(["configuration", "epochs"], sort=False):
        mean, low, high = t_interval(group["test_accuracy"])
        figure = None if _blank(group["report_test_accuracy"].iloc[0]) else float(group["report_test_accuracy"].iloc[0])
        full = spec.full_epochs or epochs
        ran_min, ran_max = int(group["epochs_run"].min()), int(group["epochs_run"].max())
        rows.append(
            {
                "experiment": name,
                "configuration": configuration,
                "epochs": epochs,
                "runs": len(group),
                "seeds": group["seed"].nunique(),
                "epochs_run_min": ran_min,
                "epochs_run_max": ran_max,
                "full_epochs": full,
                "test_accuracy_mean": mean,
                "test_accuracy_std": group["test_accuracy"].std() if len(group) > 1 else math.nan,
                "ci_low": low,
                "ci_high": high,
                "report_test_accuracy": figure,
                "difference_pts": math.nan if figure is None else 100 * (mean - figure),
                "verdict": verdict(mean, low, high, figure),
                "test_loss_mean": group["test_loss"].mean(),
                "report_test_loss": group["report_test_loss"].iloc[0],
                "final_val_accuracy": group["val_accuracy"].mean(),
                "seconds_per_epoch": group["epoch_seconds"].mean(),
                "report_note": group["report_note"].iloc[0],
                "short_of_protocol": shortfall(group["seed"].nunique(), ran_min, ran_max, full),
            }
        )
    return pd.DataFrame(rows)


# Tables, tags and figures


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def to_markdown(table: pd.DataFrame, title: str, with_experiment: bool = False) -> str:
    """The table as GitHub markdown (percentages), written by hand to avoid a tabulate dependency."""

    def pct(value: Any) -> str:
        return "" if _blank(value) else f"{100 * value:.2f}%"

    def num(value: Any, digits: int) -> str:
        return "" if _blank(value) else f"{value:.{digits}f}"

    head = [
        "configuration",
        "epochs run",
        "runs",
        "test accuracy",
        f"{CONFIDENCE:.0%} interval",
        "report",
        "verdict",
        "test loss",
        "report's loss",
        "report's words",
        "short of the report's protocol",
        "s/epoch",
    ]
    head = ["experiment", *head] if with_experiment else head
    align = [
        "---"
        if h in ("experiment", "configuration", "verdict", "report's words", "short of the report's protocol")
        else "---:"
        for h in head
    ]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for row in table.to_dict("records"):
        ran = (
            f"{row['epochs_run_min']}"
            if row["epochs_run_min"] == row["epochs_run_max"]
            else f"{row['epochs_run_min']}-{row['epochs_run_max']}"
        )
        epochs = str(row["epochs"]) if ran == str(row["epochs"]) else f"{ran} of {row['epochs']}"
        interval = "" if _blank(row.get("ci_low")) else f"{100 * row['ci_low']:.2f} to {100 * row['ci_high']:.2f}%"
        cells = [
            row["configuration"],
            epochs,
            str(row["runs"]),
            pct(row["test_accuracy_mean"]),
            interval,
            pct(row.get("report_test_accuracy")),
            row.get("verdict", ""),
            num(row.get("test_loss_mean"), 4),
            num(row.get("report_test_loss"), 4),
            row.get("report_note", ""),
            row.get("short_of_protocol", ""),
            num(row.get("seconds_per_epoch"), 0),
        ]
        cells = [row["experiment"], *cells] if with_experiment else cells
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join([*lines, "", METHOD]) + "\n"


def verdict_tag(table: pd.DataFrame) -> str:
    """The verdicts of a table as one line: ``configuration: verdict [shortfall]; ...``."""
    repeated = table["configuration"].duplicated(keep=False)
    parts = []
    for row, twice in zip(table.to_dict("records"), repeated):
        label = f"{row['configuration']} ({row['epochs']} epochs)" if twice else row["configuration"]
        parts.append(
            f"{label}: {row['verdict']}" + (f" [{row['short_of_protocol']}]" if row["short_of_protocol"] else "")
        )
    return "; ".join(parts)[:MAX_NOTE]


def _note(markdown: str, artifact: str) -> str:
    """The run description: the markdown, cut to MLflow's tag limit with a pointer to the whole artifact."""
    if len(markdown) <= MAX_NOTE:
        return markdown
    tail = f"\n\n(cut to fit; the whole table is the artifact {artifact})"
    return markdown[: MAX_NOTE - len(tail)] + tail


def metric_curves(stores: Stores, runs: list[MlflowRun], metric: str) -> dict[str, plots.Curve]:
    """Each run's per-epoch ``metric`` as (1-based epochs, values), labelled by run name (and status if not
    FINISHED)."""
    curves: dict[str, plots.Curve] = {}
    for r in runs:
        history = sorted(stores.metric_history(r.info.run_id, metric), key=lambda m: m.step)
        if history:
            label = r.info.run_name if r.info.status == "FINISHED" else f"{r.info.run_name} [{r.info.status}]"
            curves[label] = ([m.step + 1 for m in history], [m.value for m in history])
    return curves


def _log_table(run: tracking.Run, table: pd.DataFrame, artifact_file: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / Path(artifact_file).name
        table.to_csv(path, index=False)
        run.log_artifact(path, str(Path(artifact_file).parent))


def log_experiment_report(
    stores: Stores,
    client: MlflowClient,
    parent_run_id: str,
    experiment_name: str,
    table: pd.DataFrame,
    markdown: str,
    runs: list[MlflowRun],
) -> None:
    """Table, verdicts and curves (the report's printed epochs beside ours) onto a sweep's parent run."""
    run = tracking.Run(client, parent_run_id)
    curves = {metric: metric_curves(stores, runs, metric) for metric in ("val_accuracy", "val_loss")}
    figure = plots.curves_beside_report(
        curves, printed_epochs(experiment_name), f"{experiment_name}: validation per epoch, ours and the 2017 report's"
    )
    run.log_figure(figure, "report/validation_curves.png")
    plots.close(figure)
    run.log_text(markdown, "report/comparison.md")
    _log_table(run, table, "report/comparison.csv")
    run.set_tags({tracking.TAG_NOTE: _note(markdown, "report/comparison.md"), TAG_VERDICT: verdict_tag(table)})


def report(
    experiment_name: str,
    uri: str = DEFAULT_URI,
    store_experiment: str = "cifar_exp",
    sweep_run_id: Optional[str] = None,
    also_from: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, str]:
    """Build, log (to the sweep's parent run) and return the comparison table and its markdown; ``also_from``:
    further stores whose runs join the table."""
    stores = Stores(uri, also_from)
    if sweep_run_id:
        client, parent = stores.client, find_sweep(stores.client, experiment_name, store_experiment, sweep_run_id)
    else:
        client, parent = stores.sweep(experiment_name, store_experiment)
    runs = stores.runs(store_experiment, experiment_name, client.get_experiment(parent.info.experiment_id).name)
    table = comparison_table(runs, experiment_name)
    markdown = to_markdown(table, f"{experiment_name}: measured here vs the 2017 report (sweep {parent.info.run_id})")
    try:
        log_experiment_report(stores, client, parent.info.run_id, experiment_name, table, markdown, runs)
    except WRITE_ERRORS as error:
        markdown += f"\n(not logged to the store, which cannot be written: {_first_line(error)})\n"
    return table, markdown


WRITE_ERRORS = (MlflowException, OSError, SQLAlchemyError)  # a read-only store, a full disk


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def _report_order(name: str) -> tuple[int, str]:
    return (REPORT_ORDER.index(name) if name in REPORT_ORDER else len(REPORT_ORDER), name)


def report_all(
    uri: str = DEFAULT_URI, store_experiment: str = "cifar_exp", also_from: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, str, str]:
    """Every report experiment in the store (and in ``also_from``): each one's report on its latest sweep
    parent, then one table and one figure of them all, logged to a new ``report-all`` run in ``uri``'s store.
    Returns the table, its markdown and the run id."""
    stores = Stores(uri, also_from)
    client = stores.client
    found = client.get_experiment_by_name(store_experiment)
    if found is None and not also_from:
        raise ReportError(
            f"no MLflow experiment {store_experiment!r} in {uri}; run the report's experiments first: make reproduce"
        )
    by_name: dict[str, list[MlflowRun]] = {}
    for r in stores.runs(store_experiment):
        by_name.setdefault(r.data.tags["experiment"], []).append(r)
    tables, notes = [], []
    for name in sorted(by_name, key=_report_order):
        try:
            table = comparison_table(by_name[name], name)
        except ReportError:
            notes.append(f"{name}: no finished run yet.")
            continue
        tables.append(table)
        try:
            sweep_client, parent = stores.sweep(name, store_experiment)
        except ReportError:
            notes.append(f"{name}: no sweep parent run to tag (its runs were not started with --multirun).")
            continue
        markdown = to_markdown(table, f"{name}: measured here vs the 2017 report (sweep {parent.info.run_id})")
        try:
            log_experiment_report(stores, sweep_client, parent.info.run_id, name, table, markdown, by_name[name])
        except WRITE_ERRORS as error:
            notes.append(f"{name}: not logged to its sweep, the store cannot be written ({_first_line(error)}).")
    missing = [name for name in REPORT_ORDER if name not in by_name]
    if missing:
        notes.append(f"Not in the store yet: {', '.join(missing)}.")
    if not tables:
        raise ReportError(f"no finished run of any report experiment in {store_experiment!r}; " + " ".join(notes))
    combined = pd.concat(tables, ignore_index=True)
    markdown = to_markdown(
        combined, "The 2017 report, experiment by experiment: measured here vs reported", with_experiment=True
    ) + "".join(f"\n{note}\n" for note in notes)
    figure = plots.verdict_chart(
        [f"{r['experiment']}: {r['configuration']}" for r in combined.to_dict("records")],
        combined["test_accuracy_mean"],
        combined["ci_low"],
        combined["ci_high"],
        combined["report_test_accuracy"].astype(float),
        combined["verdict"],
        "The 2017 report's test accuracy beside ours",
    )
    counts = verdict_counts(combined)
    try:
        experiment_id = found.experiment_id if found else client.create_experiment(store_experiment)
        run_id = client.create_run(
            experiment_id,
            run_name=ALL_RUN_NAME,
            tags={
                tracking.TAG_ROLE: "report",
                "mlflow.runName": ALL_RUN_NAME,
                TAG_VERDICT: ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if k != "arms"),
                tracking.TAG_NOTE: _note(markdown, "report/report_all.md"),
            },
        ).info.run_id
    except WRITE_ERRORS as error:
        plots.close(figure)
        return combined, markdown + f"\n(not logged: the store cannot be written: {_first_line(error)})\n", ""
    run = tracking.Run(client, run_id)
    try:
        run.log_figure(figure, "report/verdicts.png")
        run.log_text(markdown, "report/report_all.md")
        _log_table(run, combined, "report/report_all.csv")
        run.log_metrics(counts)
    finally:
        plots.close(figure)
        client.set_terminated(run_id, "FINISHED")
    return combined, markdown, run_id


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cifar_exp.report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "experiment", nargs="?", help="a name from experiments/ (learning_rate, dropout, decay, sgd, ...), or all"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"every experiment in the store, one table and figure, logged to a new run named {ALL_RUN_NAME}",
    )
    parser.add_argument("--uri", default=DEFAULT_URI, help="tracking URI (default: the project's store)")
    parser.add_argument("--store-experiment", default="cifar_exp", help="MLflow experiment holding the sweeps")
    parser.add_argument("--sweep", help="the sweep parent run to log the report to (default: the latest one)")
    parser.add_argument(
        "--also-from",
        action="append",
        default=[],
        metavar="URI",
        help="another store whose runs join the tables, read-only (repeatable): e.g. a GPU machine's store "
        "brought back as sqlite:///mlruns/gpu/mlflow.db",
    )
    args = parser.parse_args(argv)
    every = args.all or args.experiment == "all"
    if every and (args.sweep or args.experiment not in (None, "all")):
        parser.error("--all reports on every experiment: name no experiment and no --sweep")
    if not every and not args.experiment:
        parser.error("name an experiment (e.g. decay), or all / --all for the whole report")
    try:
        if not every and args.experiment not in options("experiment"):
            raise ReportError(
                f"unknown experiment {args.experiment!r}; the report's experiments are "
                f"{', '.join(options('experiment'))} (or all / --all for every one)."
            )
        tracking.prepare_store(args.uri, must_exist=True)
        for other in args.also_from:
            tracking.prepare_store(other, must_exist=True)
        also_from = tuple(args.also_from)
        if every:
            _, markdown, run_id = report_all(args.uri, args.store_experiment, also_from)
            markdown += f"\nLogged to MLflow run {run_id} ({ALL_RUN_NAME}).\n" if run_id else ""
        else:
            _, markdown = report(args.experiment, args.uri, args.store_experiment, args.sweep, also_from)
    except CifarExpError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(markdown)


if __name__ == "__main__":
    main()
