"""Run records back into a store (see :mod:`cifar_exp.tracking.records`): each record the store lacks becomes an
ended MLflow run with the record's status, times, params, tags and metric histories.

MLflow gives every created run a new id: an imported run carries its original's in tag ``cifar_exp.record_of``,
and the original ids inside its tags are rewritten to this store's. A run is written under tag
``cifar_exp.importing`` and gets ``cifar_exp.record_of`` only once whole, so an import cut short at any point (a
signal, ``kill -9``, a store that stopped answering) leaves runs that the next import deletes and writes again.
Importing again writes an earlier import again, under a new id, where its record has changed since (tag
``cifar_exp.record_digest`` says which record it holds; MLflow params cannot be changed in place), and re-points the
links to it (changes made to it in this store since are said to be left on the replaced copy); never from an earlier
copy of the record it holds (one whose tags, params and metric steps it has, with more: an older records folder
imported after a newer one must not take back a verdict or a metric). A store's own runs are never changed, but said
when their records differ. One import per store at a time on this machine (a lock); imports from several
machines into one server at once are not guarded against.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from filelock import Timeout
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from cifar_exp.errors import TrackingError
from cifar_exp.tracking.environment import process_tags
from cifar_exp.tracking.record_export import original_ids, record_of
from cifar_exp.tracking.records import (
    LINK_PREFIXES,
    LINKS,
    RUN_ID_IN_TEXT,
    TAG_IMPORTING,
    TAG_RECORD_OF,
    metric_value,
    original_id,
    read_records,
)
from cifar_exp.tracking.store import experiment_id, import_lock, masked

TAG_DIGEST = (
    "cifar_exp.record_digest"  # on an imported run: the sha256 of the record it was last brought up to date with
)
PROCESS_TAGS = ("host", "pid", "pid_started")  # whose process a RUNNING run belongs to: the importer's until it ends
_METRICS_BATCH, _TAGS_BATCH = 1000, 100  # per log_batch call: MLflow's limits


@dataclass
class Imported:
    """What :func:`import_records` did, by original run id: imported (-> the new id), written again from a changed
    record, already there (of which some differ from their records)."""

    imported: dict[str, str] = field(default_factory=dict)
    updated: list[str] = field(default_factory=list)  # imported earlier from a record that has changed since
    already: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)  # this store's own runs, which their records no longer match
    older: list[str] = field(default_factory=list)  # imported earlier from a later copy of this record: left alone
    edited: list[str] = field(default_factory=list)  # of the updated: changed in this store since their import


def import_records(
    client: MlflowClient, store_experiment: str, folder: Path, loaded: Optional[list[dict[str, Any]]] = None
) -> Imported:
    """Bring every record under ``folder`` (``loaded``: those records, already read) into MLflow experiment
    ``store_experiment``; every record is read and checked before anything is written."""
    records = read_records(folder) if loaded is None else loaded
    try:
        with import_lock(client.tracking_uri):
            return _import(client, experiment_id(client, store_experiment), records)
    except Timeout as error:
        raise TrackingError(
            f"another import into {masked(client.tracking_uri)} is running now; wait for it to end, then import again "
            "(nothing was imported by this one)."
        ) from error


def _import(client: MlflowClient, experiment: str, records: list[dict[str, Any]]) -> Imported:
    runs = client.search_runs([experiment], max_results=50000)
    cut_short = [r for r in runs if TAG_IMPORTING in r.data.tags]
    present = {original_id(r): r for r in runs if r not in cut_short}
    done = Imported()
    changed = [
        r for r in records if _imported(present.get(r["run_id"])) and _digest_of(present[r["run_id"]]) != digest(r)
    ]
    originals = original_ids(client, experiment)
    held = {r["run_id"]: record_of(client, present[r["run_id"]], originals) for r in changed}
    # A run changed here since its import no longer says what it was imported from: it cannot be judged older.
    edited = {run_id for run_id, record in held.items() if digest(record) != _digest_of(present[run_id])}
    done.older = [r["run_id"] for r in changed if r["run_id"] not in edited and is_earlier(r, held[r["run_id"]])]
    changed = [r for r in changed if r["run_id"] not in done.older]
    done.edited = [r["run_id"] for r in changed if r["run_id"] in edited]
    replaced = {r["run_id"]: present.pop(r["run_id"]).info.run_id for r in changed}
    for run_id in [r.info.run_id for r in cut_short] + list(replaced.values()):  # written again below, under new ids
        client.delete_run(run_id)
    done.updated = [r["run_id"] for r in changed]
    for record in records:
        if record["run_id"] not in present:
            done.imported[record["run_id"]] = _create(client, experiment, record)
    new_ids = {old: run.info.run_id for old, run in present.items()} | done.imported
    originals |= original_ids(client, experiment)
    for record in records:
        run_id = record["run_id"]
        if run_id in done.imported:
            _finish(client, done.imported[run_id], record, new_ids)
        elif _imported(present[run_id]):
            _relink(client, present[run_id], record, new_ids)
            done.already.append(run_id)
        else:  # this store's own run, which an import never changes
            done.already.append(run_id)
            if digest(record_of(client, present[run_id], originals)) != digest(record):
                done.differ.append(run_id)
    for run_id in done.updated:
        done.imported.pop(run_id)
    moved = _moved(client, experiment, new_ids)
    if moved:
        _follow(client, [r for r in present.values() if not _imported(r)], moved)
    return done


def _moved(client: MlflowClient, experiment: str, new_ids: dict[str, str]) -> dict[str, str]:
    """Deleted imported runs -> the runs that hold their records now: those an import wrote again under new ids
    (this one, or one cut short after deleting the old copy), and those deleted by hand and imported again."""
    deleted = client.search_runs(
        [experiment], f"tags.`{TAG_RECORD_OF}` LIKE '%'", run_view_type=ViewType.DELETED_ONLY, max_results=50000
    )
    moved = {run.info.run_id: new_ids.get(original_id(run)) for run in deleted}
    return {old: new for old, new in moved.items() if new is not None and new != old}


def _follow(client: MlflowClient, runs: list[MlflowRun], moved: dict[str, str]) -> None:
    """Links of the store's own runs (a sweep that skipped an imported run) follow the runs that a changed record
    wrote again under new ids: the one change an import makes to them."""
    for run in runs:
        tags = run.data.tags
        links = {k: moved[v] for k, v in tags.items() if k in LINKS and v in moved}
        for key in [k for k in tags if k.startswith(LINK_PREFIXES) and k.rsplit(".", 1)[-1] in moved]:
            links[key.rsplit(".", 1)[0] + "." + moved[key.rsplit(".", 1)[-1]]] = tags[key]
            client.delete_tag(run.info.run_id, key)
        _log(client, run.info.run_id, tags=links)


def _imported(run: Optional[MlflowRun]) -> bool:
    return run is not None and TAG_RECORD_OF in run.data.tags


def _digest_of(run: MlflowRun) -> str:
    return run.data.tags.get(TAG_DIGEST, "")


def _metrics(record: dict[str, Any]) -> list[Metric]:
    return [
        Metric(key, metric_value(value), timestamp, step)
        for key, steps in record["metrics"].items()
        for step, value, timestamp in steps
    ]


def _tags(record: dict[str, Any], new_ids: dict[str, str]) -> dict[str, str]:
    """The record's tags in this store's run ids."""

    def here(text: str) -> str:
        return RUN_ID_IN_TEXT.sub(lambda m: new_ids.get(m.group(0), m.group(0)), text)

    return {here(k): here(v) for k, v in record["tags"].items() if k != MLFLOW_RUN_NAME}


def _log(
    client: MlflowClient, run_id: str, metrics: Sequence[Metric] = (), tags: Optional[dict[str, str]] = None
) -> None:
    """Metrics and tags in batches of the sizes MLflow takes."""
    metrics = list(metrics)
    for start in range(0, len(metrics), _METRICS_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _METRICS_BATCH])
    pairs = [RunTag(k, v) for k, v in (tags or {}).items()]
    for start in range(0, len(pairs), _TAGS_BATCH):
        client.log_batch(run_id, tags=pairs[start : start + _TAGS_BATCH])


def _create(client: MlflowClient, experiment: str, record: dict[str, Any]) -> str:
    """The run, RUNNING under this process and marked as being imported, with its params and metrics."""
    tags = {MLFLOW_RUN_NAME: record["run_name"], TAG_IMPORTING: record["run_id"], **process_tags()}
    run_id = client.create_run(experiment, start_time=record["start_time"], tags=tags).info.run_id
    params = [Param(k, v) for k, v in record["params"].items()]
    for start in range(0, len(params), _TAGS_BATCH):
        client.log_batch(run_id, params=params[start : start + _TAGS_BATCH])
    _log(client, run_id, _metrics(record))
    return run_id


def _finish(client: MlflowClient, run_id: str, record: dict[str, Any], new_ids: dict[str, str]) -> None:
    """The record's tags, then its status and end time; only then the recorded process (a RUNNING run names the
    importer until it ends) and the mark that the run is whole."""
    tags = _tags(record, new_ids)
    _log(client, run_id, tags={k: v for k, v in tags.items() if k not in PROCESS_TAGS})
    client.set_terminated(run_id, status=record["status"], end_time=record["end_time"])
    whole = {TAG_RECORD_OF: record["run_id"], TAG_DIGEST: digest(record)}
    _log(client, run_id, tags={**{k: v for k, v in tags.items() if k in PROCESS_TAGS}, **whole})
    client.delete_tag(run_id, TAG_IMPORTING)


def _relink(client: MlflowClient, run: MlflowRun, record: dict[str, Any], new_ids: dict[str, str]) -> bool:
    """Point an earlier import's links (tags naming runs) at the runs as they are now: one that an import cut short
    had left half-written was written again under a new id. Whether any link changed."""
    expected = {k: v for k, v in _tags(record, new_ids).items() if k in LINKS or k.startswith(LINK_PREFIXES)}
    links = {k: v for k, v in expected.items() if run.data.tags.get(k) != v}
    _log(client, run.info.run_id, tags=links)
    stale = [k for k in run.data.tags if k.startswith(LINK_PREFIXES) and k not in expected]  # a run written again
    for key in stale:
        client.delete_tag(run.info.run_id, key)
    return bool(links or stale)


def is_earlier(record: dict[str, Any], held: dict[str, Any]) -> bool:
    """Whether ``record`` is an earlier copy of ``held``: ``held`` has its params, each metric's steps as its first
    steps, every tag it names (a tag's text may have been rewritten since: the report rewrites a sweep's note as it
    adds the verdict) and more tags or steps, ending no sooner."""
    metrics, size = held["metrics"], lambda r: len(r["tags"]) + sum(len(steps) for steps in r["metrics"].values())
    return (
        record["params"].items() <= held["params"].items()
        and record["tags"].keys() <= held["tags"].keys()
        and all(metrics.get(key, [])[: len(steps)] == steps for key, steps in record["metrics"].items())
        and size(record) < size(held)
        and (record["end_time"] or 0) <= (held["end_time"] or 0)
    )


def digest(record: dict[str, Any]) -> str:
    """What a record says, as a sha256: an import compares it with the one it last took."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
