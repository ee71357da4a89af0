"""Where the report's runs come from: the sweep parents and runs of one store, or of several pooled.

A lent GPU machine or a colleague's laptop keeps its own SQLite store; :class:`Stores` reads theirs beside this
one's without copying anything between them.
"""

from __future__ import annotations

import statistics
from typing import Any, Optional

from mlflow.entities import Run as MlflowRun
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from cifar_exp import tracking
from cifar_exp.comparison import arm_key
from cifar_exp.config import options
from cifar_exp.errors import ReportError


def find_sweep(
    client: MlflowClient, experiment_name: str, store_experiment: str, sweep_run_id: Optional[str] = None
) -> MlflowRun:
    """The sweep's parent run: the given id, else the latest sweep of ``experiment_name`` that has ended (a
    running sweep's own summary would overwrite the verdict when it ends), else the latest."""
    if sweep_run_id:
        try:
            parent = client.get_run(sweep_run_id)
        except MlflowException as error:
            raise ReportError(f"--sweep {sweep_run_id}: no such run in the store ({error.message}).") from error
        if parent.data.tags.get(tracking.TAG_ROLE) != "sweep":
            raise ReportError(
                f"--sweep {sweep_run_id}: run {parent.info.run_name!r} is not a sweep's parent run; "
                f"give the id of a run named sweep-{experiment_name}, or leave --sweep out."
            )
        if tracking.report_experiment(parent) != experiment_name:
            raise ReportError(
                f"--sweep {sweep_run_id}: run {parent.info.run_name!r} is not a sweep of +experiment="
                f"{experiment_name}, and its verdict would be overwritten with this one's; give the id of a run "
                f"named sweep-{experiment_name} started with +experiment={experiment_name}, or leave --sweep out."
            )
        return parent
    found = client.get_experiment_by_name(store_experiment)
    runs = [] if found is None else sweep_parents(client, found.experiment_id, experiment_name)
    if not runs:
        raise ReportError(
            f"no sweep of experiment {experiment_name!r} in MLflow experiment {store_experiment!r}; "
            f"run one with: python -m cifar_exp --multirun +experiment={experiment_name}"
        )
    return max(runs, key=_preference)


def sweep_parents(client: MlflowClient, experiment_id: str, experiment_name: Optional[str] = None) -> list[MlflowRun]:
    """Every sweep parent of report experiment ``experiment_name`` (None: of every one) in an MLflow experiment,
    newest first. A plain sweep of the same keys has the same name (``--multirun dropout=a,b`` is
    ``sweep-dropout`` too): only the sweeps started with ``+experiment=<name>`` count."""
    name = f"= 'sweep-{experiment_name}'" if experiment_name else "LIKE 'sweep-%'"
    parents = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{tracking.TAG_ROLE}` = 'sweep' and attributes.run_name {name}",
        order_by=["attributes.start_time DESC"],
        max_results=50000,
    )
    return [p for p in parents if tracking.report_experiment(p) is not None]


def _preference(parent: MlflowRun) -> tuple[bool, int]:
    """Which sweep parent gets the verdict: one that has ended before a running one, then the newest."""
    return parent.info.status != "RUNNING", parent.info.start_time or 0


class Stores:
    """The store the report is logged to, and any further stores whose runs join its tables.

    A lent GPU machine or a colleague's laptop keeps its own SQLite store; ``--also-from`` pools their runs
    with this one's (same configuration, same seed: the longest run counts) without copying them over. A
    sweep's table and verdict go to the newest sweep parent among the stores, in the store that holds it.
    """

    def __init__(self, uri: str, also_from: tuple[str, ...] = ()):
        self.client = MlflowClient(uri)
        self.clients = [self.client, *(MlflowClient(other) for other in also_from)]
        self._owner: dict[str, MlflowClient] = {}

    def runs(self, store_experiment: str, experiment_name: Optional[str] = None) -> list[MlflowRun]:
        """Every run of report experiment ``experiment_name`` (None: of every one) in MLflow experiment
        ``store_experiment`` of every store, oldest first. An arm two experiments share (dropout's baseline is
        augmentation's none) is one configuration whose runs count in both: see :func:`_shared_runs`."""
        found: dict[str, MlflowRun] = {}
        for client in self.clients:
            experiment = client.get_experiment_by_name(store_experiment)
            if experiment is None:
                continue
            runs = experiment_runs(client, experiment.experiment_id, experiment_name)
            if experiment_name:
                runs += _shared_runs(client, experiment.experiment_id, experiment_name, runs)
            for run in runs:
                self._owner[run.info.run_id] = client
                found.setdefault(run.info.run_id, run)
        return sorted(found.values(), key=lambda r: r.info.start_time or 0)

    def experiment_names(self, store_experiment: str) -> list[str]:
        """The report experiments with runs or sweeps in the stores: a sweep whose every job was skipped (its arms
        run by other experiments) has no run of its own, yet its experiment has a table."""
        names = [r.data.tags["experiment"] for r in self.runs(store_experiment)]
        for client in self.clients:
            experiment = client.get_experiment_by_name(store_experiment)
            if experiment is not None:
                names += filter(None, map(tracking.report_experiment, sweep_parents(client, experiment.experiment_id)))
        return list(dict.fromkeys(name for name in names if name in options("experiment")))

    def metric_history(self, run_id: str, metric: str) -> list[Any]:
        """A run's per-step values of ``metric``, from whichever store holds the run."""
        return self._owner.get(run_id, self.client).get_metric_history(run_id, metric)

    def median_epoch_seconds(self, runs: list[MlflowRun]) -> dict[str, float]:
        """Each finished run's median ``epoch_seconds`` over its epochs: what an epoch typically took."""
        seconds = {}
        for r in (r for r in runs if r.info.status == "FINISHED"):
            history = [m.value for m in self.metric_history(r.info.run_id, "epoch_seconds")]
            if history:
                seconds[r.info.run_id] = float(statistics.median(history))
        return seconds

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
        return max(parents, key=lambda found: _preference(found[1]))


def _shared_runs(
    client: MlflowClient, experiment_id: str, experiment_name: str, runs: list[MlflowRun]
) -> list[MlflowRun]:
    """The runs of report experiment ``experiment_name`` filed under another one: those its sweeps skipped or
    continued (a run keeps the experiment that started it), and every other seed of an arm among them
    (:func:`~cifar_exp.comparison.arm_key`), so that both experiments judge a shared arm on the same runs."""
    parents = sweep_parents(client, experiment_id, experiment_name)
    found = [run for parent in parents for run in tracking.skipped_runs(client, parent)]
    for parent in parents:
        found += tracking.sweep_children(client, parent)
    arms = {arm_key(r) for r in [*runs, *found]}
    return found + [r for r in experiment_runs(client, experiment_id) if arm_key(r) in arms]


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
