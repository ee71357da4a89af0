"""Writing run records (see :mod:`cifar_exp.tracking.records`): which runs get one, where each is filed, the record
of a run in original run ids, and the files, written whole: every finished run of a store at once
(:func:`export_records`) or one as its run ends (:func:`keep_record`, ``tracking.records``)."""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterable, Optional

import psutil
from filelock import Timeout
from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient

from cifar_exp.errors import TrackingError, briefly
from cifar_exp.tracking.records import (
    FORMAT,
    IMPORT_TAGS,
    RUN_ID_IN_TEXT,
    TAG_IMPORTING,
    TAG_RECORD_OF,
    dumps,
    original_id,
)
from cifar_exp.tracking.run import TAG_ROLE, has_result
from cifar_exp.tracking.store import client_for, import_lock, masked
from cifar_exp.tracking.sweep_parent import report_experiment

SYSTEM_PREFIX = "system/"  # MLflow's system metrics (CPU, memory every few seconds): machine diagnostics, left out
_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

log = logging.getLogger(__name__)


def original_ids(client: MlflowClient, experiment_id: str) -> dict[str, str]:
    """This store's run ids that differ from their originals (imported runs), mapped to the originals."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_RECORD_OF}` LIKE '%'", max_results=50000)
    return {run.info.run_id: original_id(run) for run in runs}


def filed_under(run: MlflowRun) -> str:
    """The folder a run's record is filed in: its report experiment ("other" for a run of none, or of a name that
    is no plain folder name); "" for a run that gets no record (one still running or unfinished, an evaluation, a
    report)."""
    role = run.data.tags.get(TAG_ROLE)
    if TAG_IMPORTING in run.data.tags:  # half-written by an import cut short: the next import writes it again
        return ""
    if role == "sweep" and run.info.status != "RUNNING":
        filed = report_experiment(run) or "other"
    elif role is None and has_result(run):
        filed = run.data.tags.get("experiment") or "other"
    else:
        return ""
    return filed if _FOLDER.fullmatch(filed) else "other"


def exported_runs(client: MlflowClient, store_experiment: str, experiments: Iterable[str] = ()) -> list[MlflowRun]:
    """The runs a record is written for: FINISHED training runs and ended sweep parents of MLflow experiment
    ``store_experiment`` (of report experiments ``experiments`` only, when given), oldest first."""
    found = client.get_experiment_by_name(store_experiment)
    if found is None:
        return []
    wanted = set(experiments)
    runs = client.search_runs([found.experiment_id], filter_string="attributes.status != 'RUNNING'", max_results=50000)
    chosen = [run for run in runs if (filed := filed_under(run)) and (not wanted or filed in wanted)]
    return sorted(chosen, key=lambda r: r.info.start_time or 0)


def _number(value: float) -> float | str:
    return (
        value if math.isfinite(value) else ("NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity"))
    )


def record_of(client: MlflowClient, run: MlflowRun, originals: dict[str, str]) -> dict[str, Any]:
    """One run as a JSON-ready record, in original ids (``originals``: this store's ids of imported runs -> their
    originals): info, params, tags and every step of every metric but MLflow's system metrics."""

    def original(text: str) -> str:
        return RUN_ID_IN_TEXT.sub(lambda m: originals.get(m.group(0), m.group(0)), text)

    metrics = {
        key: [
            [m.step, _number(m.value), m.timestamp]
            for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp))
        ]
        for key in sorted(run.data.metrics)
        if not key.startswith(SYSTEM_PREFIX)
    }
    return {
        "format": FORMAT,
        "run_id": original_id(run),
        "run_name": run.info.run_name or "",
        "status": run.info.status,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "params": dict(sorted(run.data.params.items())),
        "tags": {original(k): original(v) for k, v in sorted(run.data.tags.items()) if not k.startswith(IMPORT_TAGS)},
        "metrics": metrics,
    }


def write_record(folder: Path, run: MlflowRun, record: dict[str, Any]) -> Path:
    """Write one run's record to ``<folder>/<filed_under(run)>/<original run id>.json``, whole or not at all,
    should the disk fill or a signal land, and whoever else writes it at the same time (each writer has a file of its
    own until it is renamed into place); an unchanged record is not rewritten, a copy filed in another folder before
    is removed (one run, one record). Returns its path."""
    path = folder / filed_under(run) / f"{record['run_id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(record)
    if not path.exists() or path.read_text() != text:
        part = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.part")  # one per writer
        try:
            part.write_text(text)
            part.replace(path)
        except OSError as error:  # said of the record, not of the hidden file it was being written through
            raise OSError(error.errno, error.strerror, str(path)) from error
        finally:
            part.unlink(missing_ok=True)
    for elsewhere in folder.glob(f"*/{path.name}"):  # filed elsewhere before: the run was renamed or re-tagged
        if elsewhere != path:
            elsewhere.unlink(missing_ok=True)
    return path


def export_records(
    client: MlflowClient, store_experiment: str, folder: Path, experiments: Iterable[str] = ()
) -> list[Path]:
    """Write a record for each run :func:`exported_runs` picks, overwriting an older record of the same run;
    returns the files written. Refused while an import into the store runs on this machine."""
    try:
        with import_lock(client.tracking_uri):
            _remove_dead_writers_parts(folder)
            runs = exported_runs(client, store_experiment, experiments)
            originals = original_ids(client, runs[0].info.experiment_id) if runs else {}
            return [write_record(folder, run, record_of(client, run, originals)) for run in runs]
    except Timeout as error:
        raise TrackingError(
            f"an import into {masked(client.tracking_uri)} is running now, and its runs' links are being rewritten; "
            "export once it ends (nothing was written by this export)."
        ) from error


def _remove_dead_writers_parts(folder: Path) -> None:
    """Part files whose writer died between writing and renaming (``kill -9``): whole or not, never records (an
    import reads only ``*.json``), but they would pile up in a folder that travels; a live writer's stay."""
    for part in folder.rglob(".*.part") if folder.is_dir() else []:
        pieces = part.name.split(".")  # "", run id, pid, thread, "part"
        if len(pieces) == 5 and pieces[2].isdigit() and not psutil.pid_exists(int(pieces[2])):
            part.unlink(missing_ok=True)


def keep_record(uri: str, run_id: str, folder: str) -> Optional[Path]:
    """``tracking.records``: the record of a run that has just ended, written at once (None for a run that gets no
    record). Best effort: the run is whole in the store whatever happens here, so a record that cannot be written
    is a warning saying how to write it later, not a failed job."""
    try:
        client = client_for(uri)
        run = client.get_run(run_id)
        if not filed_under(run):
            return None
        record = record_of(client, run, original_ids(client, run.info.experiment_id))
        return write_record(Path(folder), run, record)
    except Exception as error:
        log.warning(
            "run %s is whole in the store, but its record could not be written to %s (%s); "
            "python -m cifar_exp.records export %s writes it later",
            run_id,
            folder,
            briefly(error),
            folder,
        )
        return None
