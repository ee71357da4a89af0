"""Judge the report's experiments: what we measured over seeds beside the 2017 report's figures, with a verdict.

``python -m cifar_exp.report decay`` reads every run of experiment ``decay`` (all its sweeps) and groups the
finished ones by configuration (what varies between them, and epochs; seeds pooled). Per group: mean test
accuracy with its 95% Student-t interval over seeds (``scipy.stats.t``), the report's figure, a verdict
(reproduced: the figure inside the interval; higher or lower by so many points; no figure; 1 seed: no
interval), mean test loss beside the report's, and whether the group falls short of the report's protocol
(fewer than 3 seeds, fewer epochs than the report ran; nothing is extrapolated). The table, the verdicts (tag
``verdict``) and the validation curves with the report's own printed epochs as points are logged to the
experiment's latest sweep parent run that has ended (else the latest); the table is printed.

``python -m cifar_exp.report --all`` (or ``cifar-exp report all``) does that for every experiment in the store,
then logs one table of the whole report and one figure (measured means with their intervals, the report's
figures marked) to a new run named ``report-all`` (tag ``cifar_exp.role=report``), one per invocation.

``--also-from <uri>`` pools another store's runs (a GPU machine's, brought back) without copying them; each
sweep's table and verdict go to its newest sweep parent, in whichever store holds it. The table lives in
:mod:`cifar_exp.comparison` (its statistics in :mod:`cifar_exp.verdicts`), where runs come from in
:mod:`cifar_exp.report_runs`; this module logs and prints.

The report's figures come from one place: each experiment's ``report_figures`` in ``experiments/<name>.yaml``
(matched against a run's params); its printed per-epoch lines from ``cifar_exp/report_figures/``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

import pandas as pd
from mlflow.entities import Run as MlflowRun
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from cifar_exp import plots, signals, tracking
from cifar_exp.comparison import MAX_NOTE, comparison_table, to_markdown, verdict_tag
from cifar_exp.config import default_experiment, default_store_uri, options
from cifar_exp.errors import CifarExpError, ReportError, briefly
from cifar_exp.report_runs import Stores, find_sweep
from cifar_exp.reported import REPORT_ORDER, printed_epochs
from cifar_exp.verdicts import verdict_counts

ALL_RUN_NAME = "report-all"
TAG_VERDICT = "verdict"


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
    tracking.log_figures_and_tables(
        run, {"report/validation_curves.png": figure}, {"report/comparison.csv": table.reset_index(drop=True)}
    )
    run.log_text(markdown, "report/comparison.md")
    run.set_tags({tracking.TAG_NOTE: _note(markdown, "report/comparison.md"), TAG_VERDICT: verdict_tag(table)})


def report(
    experiment_name: str,
    uri: Optional[str] = None,
    store_experiment: Optional[str] = None,
    sweep_run_id: Optional[str] = None,
    also_from: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, str]:
    """Build, log (to the sweep's parent run) and return the comparison table and its markdown; ``also_from``:
    further stores whose runs join the table. The store and MLflow experiment default to the project's."""
    uri, store_experiment = uri or default_store_uri(), store_experiment or default_experiment()
    stores = Stores(uri, also_from)
    if sweep_run_id:
        client, parent = stores.client, find_sweep(stores.client, experiment_name, store_experiment, sweep_run_id)
    else:
        client, parent = stores.sweep(experiment_name, store_experiment)
    # the sweep's own MLflow experiment: --sweep may name a sweep outside store_experiment
    runs = stores.runs(client.get_experiment(parent.info.experiment_id).name, experiment_name)
    table = comparison_table(runs, experiment_name, stores.median_epoch_seconds(runs))
    markdown, unwritten = _log_to_sweep(stores, client, parent, experiment_name, table, runs)
    if unwritten:
        markdown += f"\n(not logged to the store, which cannot be written: {unwritten})\n"
    return table, markdown


WRITE_ERRORS = (MlflowException, OSError, SQLAlchemyError)  # a read-only store, a full disk


def _log_to_sweep(
    stores: Stores, client: MlflowClient, parent: MlflowRun, name: str, table: pd.DataFrame, runs: list[MlflowRun]
) -> tuple[str, str]:
    """One experiment's table as markdown, logged to its sweep's parent run; with why it could not be logged
    ('' when it was): a store that cannot be written still gets its report printed."""
    markdown = to_markdown(table, f"{name}: measured here vs the 2017 report (sweep {parent.info.run_id})")
    try:
        log_experiment_report(stores, client, parent.info.run_id, name, table, markdown, runs)
    except WRITE_ERRORS as error:
        return markdown, briefly(error)
    return markdown, ""


def _report_order(name: str) -> tuple[int, str]:
    return (REPORT_ORDER.index(name) if name in REPORT_ORDER else len(REPORT_ORDER), name)


def report_all(
    uri: Optional[str] = None, store_experiment: Optional[str] = None, also_from: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, str, str]:
    """Every report experiment in the store (and in ``also_from``): each one's report on its latest sweep
    parent, then one table and one figure of them all, logged to a new ``report-all`` run in ``uri``'s store.
    Returns the table, its markdown and the run id."""
    uri, store_experiment = uri or default_store_uri(), store_experiment or default_experiment()
    stores = Stores(uri, also_from)
    client = stores.client
    found = client.get_experiment_by_name(store_experiment)
    if found is None and not also_from:
        raise ReportError(
            f"no MLflow experiment {store_experiment!r} in {uri}; run the report's experiments first: make reproduce"
        )
    by_name = {name: stores.runs(store_experiment, name) for name in stores.experiment_names(store_experiment)}
    tables, notes = [], []
    for name in sorted(by_name, key=_report_order):
        try:
            table = comparison_table(by_name[name], name, stores.median_epoch_seconds(by_name[name]))
        except ReportError:
            notes.append(f"{name}: no finished run yet.")
            continue
        tables.append(table)
        try:
            sweep_client, parent = stores.sweep(name, store_experiment)
        except ReportError:
            notes.append(f"{name}: no sweep parent run to tag (its runs were not started with --multirun).")
            continue
        unwritten = _log_to_sweep(stores, sweep_client, parent, name, table, by_name[name])[1]
        if unwritten:
            notes.append(f"{name}: not logged to its sweep, the store cannot be written ({unwritten}).")
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
    tags = {
        tracking.TAG_ROLE: "report",
        TAG_VERDICT: ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if k != "arms"),
        tracking.TAG_NOTE: _note(markdown, "report/report_all.md"),
    }
    opened: Optional[tracking.Run] = None
    try:  # a run like a training's: FAILED or KILLED with its reason if cut short, never left RUNNING
        with tracking.tracked_run(uri, store_experiment, ALL_RUN_NAME, tags=tags) as opened:
            tracking.log_figures_and_tables(
                opened, {"report/verdicts.png": figure}, {"report/report_all.csv": combined}
            )
            opened.log_text(markdown, "report/report_all.md")
            opened.log_metrics(counts)
    except WRITE_ERRORS as error:
        plots.close(figure)
        where = f" (run {opened.run_id} is FAILED)" if opened is not None else ""
        return combined, markdown + f"\n(not logged: the store cannot be written{where}: {briefly(error)})\n", ""
    return combined, markdown, opened.run_id


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m cifar_exp.report <experiment> | --all``: the table printed as markdown, errors as one paragraph."""
    parser = argparse.ArgumentParser(
        prog="python -m cifar_exp.report", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    parser.add_argument(
        "experiment", nargs="?", help="a name from experiments/ (learning_rate, dropout, decay, sgd, ...), or all"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"every experiment in the store, one table and figure, logged to a new run named {ALL_RUN_NAME}",
    )
    parser.add_argument("--uri", default=default_store_uri(), help="tracking URI (default: the project's store)")
    parser.add_argument("--store-experiment", default=default_experiment(), help="MLflow experiment holding the sweeps")
    parser.add_argument("--sweep", help="the sweep parent run to log the report to (default: the latest one)")
    parser.add_argument(
        "--also-from",
        action="append",
        default=[],
        metavar="URI",
        help="another store whose runs join the tables (repeatable), e.g. a GPU machine's store brought back as "
        "sqlite:///mlruns/gpu_h100/mlflow.db; runs are not copied, but a sweep parent there gets its verdict",
    )
    args = parser.parse_args(argv)
    every = args.all or args.experiment == "all"
    if every and (args.sweep or args.experiment not in (None, "all")):
        parser.error("--all reports on every experiment: name no experiment and no --sweep")
    if not every and not args.experiment:
        parser.error("name an experiment (e.g. decay), or all / --all for the whole report")
    signals.install()
    try:
        if not every and args.experiment not in options("experiment"):
            raise ReportError(
                f"unknown experiment {args.experiment!r}; the experiments (conf/experiment/) are "
                f"{', '.join(options('experiment'))} (or all / --all for every one)."
            )
        tracking.prepare_store(args.uri, must_exist=True, setting="--uri")
        tracking.retire_dead_runs(tracking.client_for(args.uri))  # a run whose process died shows as KILLED
        for other in args.also_from:
            tracking.prepare_store(other, must_exist=True, setting="--also-from")
        also_from = tuple(args.also_from)
        if every:
            _, markdown, run_id = report_all(args.uri, args.store_experiment, also_from)
            markdown += f"\nLogged to MLflow run {run_id} ({ALL_RUN_NAME}).\n" if run_id else ""
        else:
            _, markdown = report(args.experiment, args.uri, args.store_experiment, args.sweep, also_from)
    except CifarExpError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except signals.Stopped as stop:
        if stop.run_id:
            stop.details.append(f"run {stop.run_id} ({ALL_RUN_NAME}) {stop.run_state}; the same command reports again")
        print(f"error: {stop.explain()}", file=sys.stderr)
        signals.exit(stop.exit_status)
    print(markdown)


if __name__ == "__main__":
    main()
