"""How a job starts: afresh, continued from its checkpoint (``resume=<run id>|auto``, the run chosen and claimed
by :mod:`cifar_exp.tracking.resume`), or skipped because its configuration already FINISHED in the store, in a
sweep or with ``resume=auto`` (runs left RUNNING by a dead process are retired first, by
:mod:`cifar_exp.tracking.stale`).

Runs are matched by ``config_hash`` (see :func:`cifar_exp.identity.config_hash`), logged as a tag: this config's
own hash, or one that runs of the same computation recorded earlier carry (:func:`~cifar_exp.identity.config_hashes`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

from filelock import FileLock
from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient

from cifar_exp import checkpoint
from cifar_exp.errors import ConfigError, TrainingDiverged, no_room
from cifar_exp.identity import FINGERPRINT_TAG
from cifar_exp.signals import Stopped
from cifar_exp.tracking.resume import (
    check_explicit,
    checkpoint_folder,
    choose_auto,
    claim,
    hold_configuration,
    retire_unfinished,
    runs_of_config,
)
from cifar_exp.tracking.run import Run, has_result, tracked_run
from cifar_exp.tracking.stale import retire_dead_runs
from cifar_exp.tracking.store import check_experiment, client_for
from cifar_exp.tracking.store_checks import prepare_store
from cifar_exp.tracking.sweep_parent import find_sweep_parent, note_skipped_job

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One job of a (multi)run, planned against the store before any data is loaded."""

    uri: Optional[str]  # None: tracking switched off
    experiment: str
    name: str
    config_hash: str
    checkpoint_root: str
    sweep_dir: Optional[str] = None  # set for the jobs of a multirun
    resume_run_id: Optional[str] = None
    checkpoint: Optional[checkpoint.Checkpoint] = None
    finished_run: Optional[MlflowRun] = None  # set when the job is skipped
    resumed_fingerprint: Optional[str] = None  # the dataset_fingerprint the resumed run was trained on
    claim: Optional[FileLock] = None  # held while this process continues resume_run_id
    holding: Optional[FileLock] = None  # held while this process plans and trains the configuration on its data
    search_trial: Optional[int] = None  # the Optuna trial this job is, in a search: a stopped trial is not continued

    def check_same_data(self, fingerprint: str, where: str) -> None:
        """A resumed run must go on with the data it was trained on: its config can be the same while the files
        under data.path changed, and one run would then hold two datasets."""
        if self.resumed_fingerprint and self.resumed_fingerprint != fingerprint:
            raise ConfigError(
                f"resume: run {self.resume_run_id} ({self.name}) was trained on data with fingerprint "
                f"{self.resumed_fingerprint[:12]}, but {where} now gives {fingerprint[:12]}: other data than the "
                "run's (its files changed since, or another dataset), and continuing would mix two datasets in one "
                "run. Point data.path at the data it was trained on (its logged param data.path says where that "
                "was), or start a new run of this configuration without resume."
            )

    def release(self) -> None:
        """Let other commands continue this job's run, and train its configuration, again (also done by the system
        when the process dies)."""
        for lock in (self.claim, self.holding):
            if lock is not None:
                lock.release()
        self.claim = self.holding = None

    @property
    def epochs_done(self) -> int:
        """Epochs already trained (and checkpointed): training starts at this 0-based epoch."""
        return self.checkpoint.epochs_done if self.checkpoint else 0

    @contextmanager
    def open(self, tags: Mapping[str, str]) -> Iterator[tuple[Run, Path]]:
        """Open (or reopen) the job's run under its sweep parent; yields it and its checkpoint folder, which a
        FINISHED run removes. A stop signal learns how to continue the run."""
        parent = find_sweep_parent(self.uri, self.experiment, self.sweep_dir) if self.uri and self.sweep_dir else None
        opened: Optional[Run] = None
        try:
            with (
                tracked_run(self.uri, self.experiment, self.name, parent, tags, self.resume_run_id) as opened,
                tempfile.TemporaryDirectory(prefix="cifar_exp_") as scratch,
            ):
                folder = checkpoint_folder(self.checkpoint_root, opened.run_id) if opened.enabled else Path(scratch)
                yield opened, folder
        except Stopped as stop:
            run_id = opened.run_id if opened is not None and opened.enabled else stop.run_id
            if run_id is not None and run_id != stop.finished_run_id:
                stop.details.append(self._how_to_continue(run_id, marked=stop.unmarked_run_id != run_id))
            if run_id is not None and (run_id == stop.finished_run_id or self.search_trial is not None):
                shutil.rmtree(folder, ignore_errors=True)  # nothing will continue it
            raise
        except Exception as error:
            # A trial is never continued, and a diverged run would diverge again: their checkpoints only fill the disk.
            if (
                opened is not None
                and opened.enabled
                and (self.search_trial is not None or isinstance(error, TrainingDiverged))
            ):
                shutil.rmtree(checkpoint_folder(self.checkpoint_root, opened.run_id), ignore_errors=True)
            raise
        finally:
            self.release()
        if opened.enabled:
            shutil.rmtree(folder, ignore_errors=True)

    def note_skipped(self) -> None:
        """Tell this sweep's parent that the job was skipped, and which earlier run holds its result."""
        if not (self.uri and self.sweep_dir and self.finished_run is not None):
            return
        parent = find_sweep_parent(self.uri, self.experiment, self.sweep_dir)
        if parent:
            note_skipped_job(self.uri, parent, self.name, self.finished_run.info.run_id)

    def _how_to_continue(self, run_id: str, marked: bool) -> str:
        """What a stopped run's user needs: its state (``marked``: the store took the KILLED status), its
        checkpoint, and the command that continues it."""
        state = "is KILLED in" if marked else "is marked KILLED by the next command on"
        if self.search_trial is not None:
            return (
                f"run {run_id} ({self.name}) {state} {self.uri}; it was trial {self.search_trial} of a search, which "
                "the study marks FAILED: a trial is not continued, and the same command goes on with new trials"
            )
        found = checkpoint.newest(checkpoint_folder(self.checkpoint_root, run_id))
        if not found:
            return (
                f"run {run_id} ({self.name}) {state} {self.uri}; it had not finished an epoch, so there is "
                "nothing to continue: the same command starts it afresh"
            )
        return (
            f"run {run_id} ({self.name}) {state} {self.uri}; its checkpoint after epoch {found[0]} is kept in "
            f"{found[1].parent}; the same command with resume=auto continues it into the same run"
        )


def start_job(
    uri: Optional[str],
    experiment: str,
    name: str,
    config_hashes: Sequence[str],
    checkpoint_root: str,
    resume: Optional[str] = None,
    force: bool = False,
    sweep_dir: Optional[str] = None,
    search_trial: Optional[int] = None,
    fingerprint: Optional[str] = None,
) -> Job:
    """Check the store and the checkpoint folder, retire runs whose process died, and decide how this job
    starts; raises a :class:`CifarExpError` for a resume that cannot be honoured. Nothing is created yet.
    ``config_hashes``: this config's hash first, then those its earlier runs may carry; ``fingerprint``: the
    dataset's, when read: a run of the configuration on other data (the files under data.path changed, or another
    copy) is another job's, neither skipped for this one, continued by ``resume=auto`` nor retired by it."""
    job = Job(uri, experiment, name, config_hashes[0], checkpoint_root, sweep_dir, search_trial=search_trial)
    if uri is None:
        if resume:
            raise ConfigError("resume needs tracking (tracking.enabled=true): the run to continue lives in MLflow.")
        return job
    prepare_store(uri)
    _check_writable(checkpoint_root)
    client = client_for(uri)
    check_experiment(client, experiment)
    retire_dead_runs(client)
    if fingerprint and (sweep_dir or resume == "auto"):  # jobs that train a configuration once
        try:
            job.holding = hold_configuration(checkpoint_root, job.config_hash, fingerprint, name)
        except ConfigError:
            done = None if force else _finished(client, job.experiment, config_hashes, fingerprint)
            if done is None:
                raise
            job.finished_run = done  # it FINISHED before: the other command is skipping it too, or retiring
            return job
    try:
        _plan(job, client, config_hashes, resume, force, fingerprint)
    except BaseException:
        job.release()
        raise
    if job.finished_run is not None:
        job.release()  # skipped: nothing to train
    return job


def _plan(
    job: Job,
    client: MlflowClient,
    config_hashes: Sequence[str],
    resume: Optional[str],
    force: bool,
    fingerprint: Optional[str],
) -> None:
    """Decide whether ``job`` starts afresh, continues a run (``resume_run_id``) or is skipped (``finished_run``)."""
    root, name = job.checkpoint_root, job.name
    of_config = runs_of_config(client, job.experiment, config_hashes)
    runs = _on_data(of_config, fingerprint)
    done = _done(runs)
    if resume and resume != "auto":
        job.resume_run_id, job.checkpoint = resume, check_explicit(client, resume, config_hashes, root)
        job.claim, job.resumed_fingerprint = claim(client, resume, name, root)
        if done:
            log.warning(
                "resume=%s: this configuration already FINISHED as run %s; continuing the run as asked makes a "
                "second finished run of it (the report counts the longer one per seed)",
                resume,
                done[0].info.run_id,
            )
        return
    if done and not force and (job.sweep_dir or resume == "auto"):  # resume=auto: nothing left to continue
        if resume == "auto":
            retire_unfinished(client, runs, done[0].info.run_id, root)
        job.finished_run = done[0]
        return
    if resume == "auto":
        chosen = choose_auto(client, runs, root)
        if chosen is None:
            log.warning(
                "resume=auto: no unfinished run of this config (hash %s) on this data has a checkpoint; starting "
                "afresh%s",
                job.config_hash,
                _left_alone([r for r in of_config if r not in runs]),
            )
        else:
            job.resume_run_id, job.checkpoint = chosen
            job.claim, job.resumed_fingerprint = claim(client, job.resume_run_id, name, root)


def _on_data(runs: list[MlflowRun], fingerprint: Optional[str]) -> list[MlflowRun]:
    """The runs trained on the data of ``fingerprint`` (all, when it is not known)."""
    return [r for r in runs if fingerprint in (None, r.data.tags.get(FINGERPRINT_TAG, fingerprint))]


def _done(runs: list[MlflowRun]) -> list[MlflowRun]:
    return [r for r in runs if has_result(r)]


def _finished(
    client: MlflowClient, experiment: str, config_hashes: Sequence[str], fingerprint: str
) -> Optional[MlflowRun]:
    """The newest run that FINISHED this configuration on this data, if any."""
    done = _done(_on_data(runs_of_config(client, experiment, config_hashes), fingerprint))
    return done[0] if done else None


def _left_alone(others: list[MlflowRun]) -> str:
    """What a fresh start says of the configuration's runs on other data, which it leaves as they are."""
    if not others:
        return ""
    said = ", ".join(f"{r.info.run_id} ({r.info.status})" for r in others[:3]) + (" ..." if len(others) > 3 else "")
    return (
        f" (runs of it on other data, {said}, are left as they are: data.path's files changed since, or this is "
        "another copy; resume=<run id> with the data they were trained on continues one)"
    )


def _check_writable(folder: str) -> None:
    full = no_room(Path(folder))
    if full is not None:
        raise ConfigError(
            f"trainer.checkpoint_dir={folder}: {full}, so no checkpoint could be written; free some space, or "
            "point trainer.checkpoint_dir at another disk. Nothing was trained or logged."
        )
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=folder, prefix=".write_probe").close()
    except OSError as error:
        raise ConfigError(
            f"trainer.checkpoint_dir={folder} is not writable ({error}); point it at a writable "
            "folder, e.g. trainer.checkpoint_dir=/tmp/cifar_exp_checkpoints."
        ) from error
