"""Run records: what a run was and measured (status, times, params, tags, every per-epoch metric) as one small
JSON file that outlives the store it came from.

A tracking store lives on one machine's disk; a machine that is reset, a GPU machine that is handed back or a
colleague's laptop takes its runs with it. The report's verdicts rest on those runs, so :func:`export_records`
writes each finished training run and each ended sweep parent to ``<folder>/<experiment>/<run id>.json`` (tens
of kB: git can hold them beside the code), :func:`keep_record` writes one as its run ends
(``tracking.records``), and :mod:`cifar_exp.tracking.record_import` recreates them in any store. Artifacts
(models, plots, confusion matrices) stay behind: a record is evidence, not a model.

A record speaks in original run ids only: the id of the run as first created, and, inside its tags (a child's
parent, a sweep's best job, the runs its skipped jobs point at), the original ids of those runs, whichever
store it is exported from. Metric values that JSON has no number for are the strings ``"NaN"``, ``"Infinity"``
and ``"-Infinity"``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Iterable, Optional

from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from cifar_exp.errors import TrackingError, briefly
from cifar_exp.tracking.run import TAG_BEST_RUN, TAG_ROLE
from cifar_exp.tracking.store import client_for

FORMAT = 1  # the record layout's version, written into every record
TAG_RECORD_OF = "cifar_exp.record_of"  # on an imported run: the id of the run its record was exported from
TAG_IMPORTING = "cifar_exp.importing"  # on a run an import is still writing: its original id; removed once whole
IMPORT_TAGS = ("cifar_exp.record_", TAG_IMPORTING)  # an import's own bookkeeping, never part of a record
LINKS = ("mlflow.parentRunId", TAG_BEST_RUN, "resumed_from_sweep")  # tags whose value is a run's id
LINK_PREFIXES = ("cifar_exp.skipped.",)  # tags whose key ends in a run's id
SYSTEM_PREFIX = "system/"  # MLflow's system metrics (CPU, memory every few seconds): machine diagnostics, left out
ENDED = ("FINISHED", "FAILED", "KILLED")
RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")
_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_NOT_NUMBERS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

log = logging.getLogger(__name__)


def original_id(run: MlflowRun) -> str:
    """The id of the run a record stands for: an imported run's original, else its own."""
    return run.data.tags.get(TAG_RECORD_OF, run.info.run_id)


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
        name = (run.info.run_name or "").removeprefix("sweep-")
        filed = name if f"+experiment={name}" in run.data.params.get("sweep_overrides", "").split() else "other"
    elif role is None and run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics:
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
        return RUN_ID.sub(lambda m: originals.get(m.group(0), m.group(0)), text)

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


def dumps(record: dict[str, Any]) -> str:
    """A record as strict JSON text: one line per param, tag and metric (a metric's steps compact on its line), so
    that a record reads and diffs well and a 100-epoch run stays in the tens of kB."""
    head = json.dumps({k: v for k, v in record.items() if k != "metrics"}, indent=1, allow_nan=False)
    metrics = ",\n".join(
        f"  {json.dumps(key)}: {json.dumps(steps, separators=(',', ':'), allow_nan=False)}"
        for key, steps in record["metrics"].items()
    )
    return f'{head[:-2]},\n "metrics": {{\n{metrics}\n }}\n}}\n'


def write_record(folder: Path, run: MlflowRun, record: dict[str, Any]) -> Path:
    """Write one run's record to ``<folder>/<filed_under(run)>/<original run id>.json``, whole or not at all,
    should the disk fill or a signal land; an unchanged record is not rewritten. Returns its path."""
    path = folder / filed_under(run) / f"{record['run_id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(record)
    if not path.exists() or path.read_text() != text:
        part = path.with_suffix(".part")
        try:
            part.write_text(text)
            part.replace(path)
        finally:
            part.unlink(missing_ok=True)
    return path


def export_records(
    client: MlflowClient, store_experiment: str, folder: Path, experiments: Iterable[str] = ()
) -> list[Path]:
    """Write a record for each run :func:`exported_runs` picks, overwriting an older record of the same run;
    returns the files written."""
    runs = exported_runs(client, store_experiment, experiments)
    originals = original_ids(client, runs[0].info.experiment_id) if runs else {}
    return [write_record(folder, run, record_of(client, run, originals)) for run in runs]


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


def metric_value(value: float | str) -> float:
    """A metric value as a record holds it, as a float ("NaN", "Infinity" and "-Infinity" for those)."""
    return _NOT_NUMBERS[value] if isinstance(value, str) else float(value)


def _is_int(value: Any, low: int = 0, high: int = 2**63 - 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_value(value: Any) -> bool:
    """A metric value: a number a float holds (as MLflow stores it), or one of the strings for the others."""
    if isinstance(value, str):
        return value in _NOT_NUMBERS
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _check(record: Any) -> None:
    """Raise ValueError saying what makes ``record`` no record an import can take whole (MLflow's own limits
    included, so that the store refuses nothing once an import has begun)."""
    if not isinstance(record, dict) or "format" not in record:
        raise ValueError(f"not a run record (no format; this cifar_exp writes format {FORMAT})")
    if record["format"] != FORMAT:
        raise ValueError(
            f"a record of format {record['format']!r}, which this cifar_exp does not read (it reads format {FORMAT}): "
            "written by another version of cifar_exp; import it with that version"
        )
    if not RUN_ID.fullmatch(str(record.get("run_id"))):
        raise ValueError("run_id is not a run id")
    if not isinstance(record.get("run_name"), str):
        raise ValueError("run_name is not a string")
    if record.get("status") not in ENDED:
        raise ValueError(
            f"status {record.get('status')!r} is not one of {', '.join(ENDED)} (only ended runs are records)"
        )
    if not _is_int(record.get("start_time")) or not _is_int(record.get("end_time")):
        raise ValueError("start_time and end_time must be milliseconds since the epoch")
    for part, longest in (("params", MAX_PARAM_VAL_LENGTH), ("tags", MAX_TAG_VAL_LENGTH)):
        values = record.get(part)
        if not isinstance(values, dict):
            raise ValueError(f"{part} must map names to strings")
        for key, value in values.items():
            if len(key) > MAX_ENTITY_KEY_LENGTH or not isinstance(value, str) or len(value) > longest:
                raise ValueError(
                    f"{part}: {key[:60]!r} is not a name of at most {MAX_ENTITY_KEY_LENGTH} characters with a string "
                    f"of at most {longest} (MLflow's limits)"
                )
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        raise ValueError("metrics must map names to [step, value, timestamp] lists")
    for key, steps in metrics.items():
        if len(key) > MAX_ENTITY_KEY_LENGTH or not isinstance(steps, list):
            raise ValueError(
                f"metric {key[:60]!r}: not a name of at most {MAX_ENTITY_KEY_LENGTH} characters with a list"
            )
        for step in steps:
            triple = isinstance(step, list) and len(step) == 3
            if not (triple and _is_int(step[0], -(2**63)) and _is_value(step[1]) and _is_int(step[2])):
                raise ValueError(f"metric {key!r}: {str(step)[:80]} is not a [step, value, timestamp] triple")


def read_records(folder: Path) -> list[dict[str, Any]]:
    """Every record under ``folder``, each checked whole, sweep parents before the runs they hold; a TrackingError
    names the first file that is no record (or a run recorded twice), before anything is written anywhere."""
    if not folder.is_dir():
        raise TrackingError(
            f"no records folder {folder}: name the folder that export wrote (python -m cifar_exp.records import "
            "<folder>)."
        )
    records: dict[str, dict[str, Any]] = {}
    where: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
            _check(record)
        except (OSError, ValueError) as error:
            raise TrackingError(
                f"{path}: not a run record ({type(error).__name__}: {error}); restore it (git checkout -- <file>) or "
                "move it out of the folder, then import again: nothing was imported."
            ) from error
        if record["run_id"] in records:
            raise TrackingError(
                f"{path} and {where[record['run_id']]} both record run {record['run_id']}; keep one of them, then "
                "import again: nothing was imported."
            )
        records[record["run_id"]], where[record["run_id"]] = record, path
    return sorted(records.values(), key=lambda r: (r["tags"].get(TAG_ROLE) != "sweep", r["start_time"]))
