"""Run records: what a run was and measured (status, times, params, tags, every per-epoch metric) as one small
JSON file, and the same run recreated in any store from it.

A tracking store lives on one machine's disk; a machine that is reset, a GPU machine that is handed back or a
colleague's laptop takes its runs with it. The report's verdicts rest on those runs, so :func:`export_records`
writes each finished training run and each sweep parent to ``<folder>/<experiment>/<run id>.json`` (a few tens
of kB: git can hold them beside the code), and :func:`import_records` recreates them in a store as ended MLflow
runs with their original status, times and metric histories. Imported runs are ordinary runs to everything
else: the report judges them, and ``resume=auto`` skips a configuration whose imported run FINISHED on the same
data. Their artifacts (models, plots, confusion matrices) stay behind: a record is evidence, not a model.

MLflow gives every created run a new id: an imported run carries its original id in tag ``cifar_exp.record_of``
(which also makes importing twice a no-op), and ids inside tags (a child's parent, a sweep's best job, the runs
its skipped jobs point at) are rewritten to the new ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from filelock import FileLock, Timeout
from mlflow.entities import Metric, Param, RunTag
from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from cifar_exp.errors import TrackingError
from cifar_exp.tracking.environment import is_stale, process_tags
from cifar_exp.tracking.run import TAG_ROLE
from cifar_exp.tracking.store import experiment_id

FORMAT = 1  # the record layout's version, written into every record
TAG_RECORD_OF = "cifar_exp.record_of"  # on an imported run: the id of the run its record was exported from
LOCK = ".import.lock"  # in the records folder while an import runs (git ignores it)
SYSTEM_PREFIX = "system/"  # MLflow's system metrics (CPU, memory every few seconds): machine diagnostics, left out
_RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")
_METRICS_BATCH, _PARAMS_BATCH = 1000, 100  # per log_batch call: MLflow's limits


@dataclass
class Imported:
    """What :func:`import_records` did: records imported (original id -> new id), and those already there."""

    imported: dict[str, str] = field(default_factory=dict)
    already: list[str] = field(default_factory=list)


def original_id(run: MlflowRun) -> str:
    """The id of the run a record stands for: an imported run's original, else its own."""
    return run.data.tags.get(TAG_RECORD_OF, run.info.run_id)


def exported_runs(client: MlflowClient, store_experiment: str, experiments: Iterable[str] = ()) -> list[MlflowRun]:
    """The runs a record is written for: FINISHED training runs and ended sweep parents of MLflow experiment
    ``store_experiment`` (of report experiments ``experiments`` only, when given), oldest first."""
    found = client.get_experiment_by_name(store_experiment)
    if found is None:
        return []
    wanted = set(experiments)
    runs = client.search_runs([found.experiment_id], filter_string="attributes.status != 'RUNNING'", max_results=50000)
    chosen = []
    for run in runs:
        role = run.data.tags.get(TAG_ROLE)
        if role == "sweep":
            experiment = (run.info.run_name or "").removeprefix("sweep-")
        elif role is None and run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics:
            experiment = run.data.tags.get("experiment", "")
        else:
            continue
        if not wanted or experiment in wanted:
            chosen.append(run)
    return sorted(chosen, key=lambda r: r.info.start_time or 0)


def record_of(client: MlflowClient, run: MlflowRun) -> dict[str, Any]:
    """One run as a JSON-ready record: its info, params, tags and every step of every metric but MLflow's system
    metrics."""
    metrics = {
        key: [
            [m.step, m.value, m.timestamp]
            for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp))
        ]
        for key in sorted(run.data.metrics)
        if not key.startswith(SYSTEM_PREFIX)
    }
    return {
        "format": FORMAT,
        "run_id": original_id(run),
        "run_name": run.info.run_name,
        "status": run.info.status,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "params": dict(sorted(run.data.params.items())),
        "tags": {k: v for k, v in sorted(run.data.tags.items()) if k != TAG_RECORD_OF},
        "metrics": metrics,
    }


def dumps(record: dict[str, Any]) -> str:
    """A record as JSON text: one line per param, tag and metric (a metric's steps compact on its line), so that
    a record reads and diffs well and a 100-epoch run stays in the tens of kB."""
    head = json.dumps({k: v for k, v in record.items() if k != "metrics"}, indent=1)
    metrics = ",\n".join(
        f"  {json.dumps(key)}: {json.dumps(steps, separators=(',', ':'))}" for key, steps in record["metrics"].items()
    )
    return f'{head[:-2]},\n "metrics": {{\n{metrics}\n }}\n}}\n'


def record_path(folder: Path, record: dict[str, Any]) -> Path:
    """Where a record lives: one folder per report experiment (a sweep parent's is in its name)."""
    tags = record["tags"]
    experiment = tags.get("experiment") or (record["run_name"] or "").removeprefix("sweep-") or "other"
    return folder / experiment / f"{record['run_id']}.json"


def export_records(
    client: MlflowClient, store_experiment: str, folder: Path, experiments: Iterable[str] = ()
) -> list[Path]:
    """Write a record for each run :func:`exported_runs` picks, overwriting an older record of the same run;
    returns the files written."""
    written = []
    for run in exported_runs(client, store_experiment, experiments):
        record = record_of(client, run)
        path = record_path(folder, record)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = dumps(record)
        if not path.exists() or path.read_text() != text:
            part = path.with_suffix(".part")
            try:
                part.write_text(text)
                part.replace(path)  # whole or not at all, should the disk fill or a signal land
            finally:
                part.unlink(missing_ok=True)
        written.append(path)
    return written


def read_records(folder: Path) -> list[dict[str, Any]]:
    """Every record under ``folder``, parents (sweeps) before their children; a TrackingError names a file that
    is not a record."""
    if not folder.is_dir():
        raise TrackingError(
            f"no records folder {folder}: name the folder that export wrote "
            "(python -m cifar_exp.records import <folder>)."
        )
    records = []
    for path in sorted(folder.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
            if record.get("format") != FORMAT or not _RUN_ID.fullmatch(str(record.get("run_id"))):
                raise ValueError(f"not a run record of format {FORMAT}")
            for key in ("status", "start_time", "params", "tags", "metrics"):
                record[key]  # noqa: B018 - a KeyError says which part is missing
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise TrackingError(
                f"{path}: not a run record ({type(error).__name__}: {error}); it was written by something else or "
                "cut short. Restore it with git (git checkout -- <file>) or move it out of the folder, then import "
                "again: nothing was imported."
            ) from error
        records.append(record)
    return sorted(records, key=lambda r: (r["tags"].get(TAG_ROLE) != "sweep", r["start_time"] or 0))


def _present(client: MlflowClient, experiment: str) -> dict[str, MlflowRun]:
    """The store's runs by the id they stand for (an imported run by its original's)."""
    runs = client.search_runs([experiment], max_results=50000)
    return {original_id(run): run for run in runs}


def import_records(
    client: MlflowClient, store_experiment: str, folder: Path, loaded: Optional[list[dict[str, Any]]] = None
) -> Imported:
    """Recreate every record under ``folder`` in MLflow experiment ``store_experiment`` that the store does not
    hold yet, as an ended run with the record's status, times, params, tags and metric histories.

    Every record is read and checked before anything is written. A run whose import was cut short (still
    RUNNING, or retired KILLED by the next command, while its record says otherwise) is deleted and imported
    again, so the same command can always be repeated. ``loaded``: the folder's records, already read."""
    records = read_records(folder) if loaded is None else loaded
    try:
        with FileLock(str(folder / LOCK), timeout=0):
            return _import(client, experiment_id(client, store_experiment), records)
    except Timeout as error:
        raise TrackingError(
            f"another import of {folder} is running now; wait for it to end (it imports the same records)."
        ) from error


def _import(client: MlflowClient, experiment: str, records: list[dict[str, Any]]) -> Imported:
    present = _present(client, experiment)
    done = Imported()
    for record in records:
        found = present.get(record["run_id"])
        if found is not None and (found.info.status == record["status"] or TAG_RECORD_OF not in found.data.tags):
            done.already.append(record["run_id"])
            continue
        if found is not None and found.info.status == "RUNNING" and not is_stale(found):
            raise TrackingError(
                f"run {found.info.run_id} ({found.info.run_name}) is RUNNING in the store under process "
                f"{found.data.tags.get('pid', '?')} on {found.data.tags.get('host', '?')}: another command is "
                "writing it (an import from another folder or machine?); wait for it to end, then import again."
            )
        if found is not None:
            client.delete_run(found.info.run_id)
        done.imported[record["run_id"]] = _create(client, experiment, record)
    new_ids = {old: run.info.run_id for old, run in present.items()} | done.imported
    for record in records:
        if record["run_id"] in done.imported:
            _finish(client, done.imported[record["run_id"]], record, new_ids)
    return done


def _create(client: MlflowClient, experiment: str, record: dict[str, Any]) -> str:
    """The run, RUNNING under this process (so that a cut-short import is retired like any dead run), with its
    params and metrics."""
    tags = {MLFLOW_RUN_NAME: record["run_name"] or "", TAG_RECORD_OF: record["run_id"], **process_tags()}
    run_id = client.create_run(experiment, start_time=record["start_time"], tags=tags).info.run_id
    params = [Param(k, v) for k, v in record["params"].items()]
    for start in range(0, len(params), _PARAMS_BATCH):
        client.log_batch(run_id, params=params[start : start + _PARAMS_BATCH])
    metrics = [
        Metric(key, value, timestamp, step)
        for key, steps in record["metrics"].items()
        for step, value, timestamp in steps
    ]
    for start in range(0, len(metrics), _METRICS_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _METRICS_BATCH])
    return run_id


def _finish(client: MlflowClient, run_id: str, record: dict[str, Any], new_ids: dict[str, str]) -> None:
    """The record's own tags, the run ids in them rewritten to this store's, then its status and end time."""

    def remap(text: str) -> str:
        return _RUN_ID.sub(lambda m: new_ids.get(m.group(0), m.group(0)), text)

    tags = [RunTag(remap(k), remap(v)) for k, v in record["tags"].items() if k != MLFLOW_RUN_NAME]
    for start in range(0, len(tags), _PARAMS_BATCH):
        client.log_batch(run_id, tags=tags[start : start + _PARAMS_BATCH])
    client.set_terminated(run_id, status=record["status"], end_time=record["end_time"])
