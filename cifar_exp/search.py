"""The job's side of a hyper-parameter search: the Optuna study's storage and this job's trial in it.

The ``optuna`` sweeper (``hydra_plugins/cifar_exp_optuna``) asks the study for trials and launches one job per
trial with ``search.study``, ``search.storage`` and ``search.trial`` set. The job opens its trial here, from the
shared storage, reports its validation metric every epoch (:class:`cifar_exp.callbacks.ReportToStudy`) and
stops when the study's pruner says so. Optuna does not store pruners, so the sweeper stores its pruner's
config in the study (user attribute ``pruner``) and every job builds the same one from it. Optuna is
imported only when a search needs it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from cifar_exp import signals

RESULTS_DIR = "optuna"  # in a search's sweep folder: the study's results, logged to its parent run under this name
BEST_TRIAL_FILE = "best_trial.yaml"  # in RESULTS_DIR: the best trial's number, value, parameters and command line

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)
PRUNER_ATTR = "pruner"  # study user attribute: the pruner's config, {_target_: optuna.pruners..., ...}
METRIC_ATTR = "metric"  # study user attribute: the epoch log each trial reports (val_accuracy)
FIXED_ATTR = "fixed_settings"  # study user attribute: the settings its trials share, {dotted key: JSON value}
PRUNED_ATTR = "pruned_at_epoch"  # trial user attribute: set by the job that the pruner stopped
CHECKPOINT_ATTR = "checkpoint_folder"  # trial user attribute: its run's checkpoints, removed if its search dies


def _journal_file(path: str) -> Any:
    """Optuna's journal file backend, whose every append first drops a record that a failed write left torn (a full
    disk, a process killed mid-write): appended after it, the next record would fuse with it into a line that no
    reader can parse, and every later command on the study would fail to open it. Optuna's own lock (the one its
    append takes) keeps other writers out meanwhile, so a line without its newline is never another's write."""
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(path)

    class JournalFile(JournalFileBackend):
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            lock.acquire()
            try:
                _drop_torn_tail(Path(path))
                text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
                with open(path, "ab") as opened:
                    opened.write(text.encode("utf-8"))
                    opened.flush()
                    os.fsync(opened.fileno())
            finally:
                lock.release()

    return JournalFile(path, lock_obj=lock)


def _drop_torn_tail(file: Path) -> None:
    """Cut a journal file back to its last complete line (records end with a newline)."""
    with file.open("rb+") as opened:
        end = size = opened.seek(0, os.SEEK_END)
        if size == 0:
            return
        opened.seek(size - 1)
        if opened.read(1) == b"\n":
            return
        while end > 0:
            start = max(0, end - 65536)
            opened.seek(start)
            newline = opened.read(end - start).rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        opened.truncate(end)
    log.warning("%s ended in a record cut short (%d bytes, a failed write): dropped", file, size - end)


def open_storage(spec: str) -> "optuna.storages.BaseStorage":
    """An Optuna storage: a database URL (``sqlite:///...``, ``postgresql+psycopg://...``), else a journal file
    path (Optuna's ``JournalFileBackend``: safe for parallel processes on one machine or a shared filesystem)."""
    import optuna

    file = spec.removeprefix("sqlite:///") if spec.startswith("sqlite:///") else None if "://" in spec else spec
    if file:
        Path(file).parent.mkdir(parents=True, exist_ok=True)  # as the tracking store's folder is
    if "://" not in spec and Path(spec).is_file() and _header(Path(spec)) == b"SQLite format 3\x00":
        raise ValueError(f"{spec} is an SQLite database, not an Optuna journal file: give it as sqlite:///{spec}")
    with signals.deferred():  # creating a database's tables must not be cut in two
        if "://" in spec:
            return optuna.storages.RDBStorage(spec)
        return optuna.storages.JournalStorage(_journal_file(spec))


def _header(file: Path) -> bytes:
    """A file's first 16 bytes (an SQLite database's magic string), without reading the rest of a large store."""
    with file.open("rb") as opened:
        return opened.read(16)


def make_pruner(config: Optional[dict[str, Any]]) -> "optuna.pruners.BasePruner":
    """The pruner of a ``{_target_: ..., **kwargs}`` config; none (never prune) for ``None``."""
    import optuna
    from hydra.utils import instantiate

    return optuna.pruners.NopPruner() if not config else instantiate(config)


def open_trial(study_name: str, storage: str, number: int) -> tuple["optuna.trial.Trial", str]:
    """Trial ``number`` of the study, with the study's pruner, and the metric it reports."""
    import optuna

    backend = open_storage(storage)
    study_id = backend.get_study_id_from_name(study_name)
    attrs = backend.get_study_user_attrs(study_id)
    study = optuna.load_study(study_name=study_name, storage=backend, pruner=make_pruner(attrs.get(PRUNER_ATTR)))
    trial_id = backend.get_trial_id_from_study_id_trial_number(study_id, number)
    return optuna.trial.Trial(study, trial_id), attrs.get(METRIC_ATTR, "val_accuracy")
