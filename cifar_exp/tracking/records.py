"""Run records: what a run was and measured (status, times, params, tags, every per-epoch metric) as one small
JSON file that outlives the store it came from. This module is the format (its constants, its text, its checks);
:mod:`cifar_exp.tracking.record_export` writes records and :mod:`cifar_exp.tracking.record_import` reads them
into a store.

A tracking store lives on one machine's disk; a machine that is reset, a GPU machine that is handed back or a
colleague's laptop takes its runs with it. The report's verdicts rest on those runs, so ``export_records``
writes each finished training run and each ended sweep parent to ``<folder>/<experiment>/<run id>.json`` (tens
of kB: small enough to copy off any machine), ``keep_record`` writes one as its run ends
(``tracking.records``), and :mod:`cifar_exp.tracking.record_import` recreates them in any store. Artifacts
(models, plots, confusion matrices) stay behind: a record is evidence, not a model.

A record speaks in original run ids only: the id of the run as first created, and, inside its tags (a child's
parent, a sweep's best job, the runs its skipped jobs point at), the original ids of those runs, whichever
store it is exported from. Metric values that JSON has no number for are the strings ``"NaN"``, ``"Infinity"``
and ``"-Infinity"``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from mlflow.entities import Run as MlflowRun
from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    MAX_PARAM_VAL_LENGTH,
    MAX_TAG_VAL_LENGTH,
    path_not_unique,
    validate_param_and_metric_name,
)

from cifar_exp.errors import TrackingError
from cifar_exp.identity import RUN_ID
from cifar_exp.tracking.run import TAG_BEST_RUN, TAG_RESUMED_FROM_SWEEP, TAG_ROLE, TAG_SKIPPED

FORMAT = 1  # the record layout's version, written into every record
TAG_RECORD_OF = "cifar_exp.record_of"  # on an imported run: the id of the run its record was exported from
TAG_IMPORTING = "cifar_exp.importing"  # on a run an import is still writing: its original id; removed once whole
IMPORT_TAGS = ("cifar_exp.record_", TAG_IMPORTING)  # an import's own bookkeeping, never part of a record
LINKS = ("mlflow.parentRunId", TAG_BEST_RUN, TAG_RESUMED_FROM_SWEEP)  # tags whose value is a run's id
LINK_PREFIXES = (TAG_SKIPPED,)  # tags whose key ends in a run's id
ENDED = ("FINISHED", "FAILED", "KILLED")
RUN_ID_IN_TEXT = re.compile(rf"\b{RUN_ID.pattern}\b")  # run ids inside notes and tag values, to rewrite
_NOT_NUMBERS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def original_id(run: MlflowRun) -> str:
    """The id of the run a record stands for: an imported run's original, else its own."""
    return run.data.tags.get(TAG_RECORD_OF, run.info.run_id)


def dumps(record: dict[str, Any]) -> str:
    """A record as strict JSON text: one line per param, tag and metric (a metric's steps compact on its line), so
    that a record reads and diffs well and a 100-epoch run stays in the tens of kB."""
    head = json.dumps({k: v for k, v in record.items() if k != "metrics"}, indent=1, allow_nan=False)
    metrics = ",\n".join(
        f"  {json.dumps(key)}: {json.dumps(steps, separators=(',', ':'), allow_nan=False)}"
        for key, steps in record["metrics"].items()
    )
    return f'{head[:-2]},\n "metrics": {{\n{metrics}\n }}\n}}\n'


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


NAMES = (
    f"at most {MAX_ENTITY_KEY_LENGTH} letters, digits, spaces and _ - . / :, and no path such as '..' or '/x' that "
    "resolves to another name"
)


def _is_name(key: str) -> bool:
    """Whether MLflow takes ``key`` as the name of a param, tag or metric (its own checks, so that no name a record
    holds is refused once an import has begun)."""
    return len(key) <= MAX_ENTITY_KEY_LENGTH and bool(validate_param_and_metric_name(key)) and not path_not_unique(key)


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
            if not _is_name(key) or not isinstance(value, str) or len(value) > longest:
                raise ValueError(
                    f"{part}: {key[:60]!r} is not a name MLflow takes ({NAMES}) with a string of at most {longest} "
                    "characters"
                )
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        raise ValueError("metrics must map names to [step, value, timestamp] lists")
    for key, steps in metrics.items():
        if not _is_name(key) or not isinstance(steps, list):
            raise ValueError(f"metric {key[:60]!r}: not a name MLflow takes ({NAMES}) with a list")
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
                f"{path}: not a run record ({type(error).__name__}: {error}); export it again from the store that "
                "wrote it or move it out of the folder, then import again: nothing was imported."
            ) from error
        if record["run_id"] in records:
            raise TrackingError(
                f"{path} and {where[record['run_id']]} both record run {record['run_id']}; keep one of them, then "
                "import again: nothing was imported."
            )
        records[record["run_id"]], where[record["run_id"]] = record, path
    return sorted(records.values(), key=lambda r: (r["tags"].get(TAG_ROLE) != "sweep", r["start_time"]))
