"""How a job starts: afresh, continued from its checkpoint (``resume=<run id>|auto``), or skipped because
its configuration already FINISHED in this sweep's store (runs left RUNNING by a dead process are retired
first, by :mod:`cifar_exp.tracking.stale`).

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

from filelock import FileLock, Timeout
from mlflow.entities import Run as MlflowRun
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from cifar_exp import checkpoint
from cifar_exp.errors import CheckpointError, ConfigError
from cifar_exp.signals import Stopped
from cifar_exp.tracking.environment import is_stale
from cifar_exp.tracking.run import Run, mark_killed, tracked_run
from cifar_exp.tracking.stale import retire_dead_runs
from cifar_exp.tracking.store import client_for, prepare_store
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
    search_trial: Optional[int] = None  # the Optuna trial this job is, in a search: a stopped trial is not continued

    def check_same_data(self, fingerprint: str, where: str) -> None:
        """A resumed run must go on with the data it was trained on: its config can be the same while the files
        under data.path changed, and one run would then hold two datasets."""
        if self.resumed_fingerprint and self.resumed_fingerprint != fingerprint:
            raise ConfigError(
                f"resume: run {self.resume_run_id} ({self.name}) was trained on data with fingerprint "
                f"{self.resumed_fingerprint[:12]}, but {where} now gives {fingerprint[:12]}: the dataset changed "
                "since, and continuing would mix two datasets in one run. Restore the data it was trained on, "
                "or start a new run of this configuration without resume."
            )

    def release(self) -> None:
        """Let other commands continue this job's run again (also done by the system when the process dies)."""
        if self.claim is not None:
            self.claim.release()
            self.claim = None

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
        except Exception:
            if opened is not None and opened.enabled and self.search_trial is not None:  # a trial is never continued
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


def checkpoint_folder(root: str, run_id: str) -> Path:
    return Path(root) / run_id


def runs_of_config(client: MlflowClient, experiment: str, config_hashes: Sequence[str]) -> list[MlflowRun]:
    """All runs of the experiment whose ``config_hash`` tag is one of ``config_hashes``, newest first (sweep parents
    excluded)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = [
        run
        for config_hash in dict.fromkeys(config_hashes)
        for run in client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.config_hash = '{config_hash}'",
            max_results=1000,
        )
    ]
    return sorted(runs, key=lambda r: r.info.start_time or 0, reverse=True)


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
) -> Job:
    """Check the store and the checkpoint folder, retire runs whose process died, and decide how this job
    starts; raises a :class:`CifarExpError` for a resume that cannot be honoured. Nothing is created yet.
    ``config_hashes``: this config's hash first, then those its earlier runs may carry."""
    job = Job(uri, experiment, name, config_hashes[0], checkpoint_root, sweep_dir, search_trial=search_trial)
    if uri is None:
        if resume:
            raise ConfigError("resume needs tracking (tracking.enabled=true): the run to continue lives in MLflow.")
        return job
    prepare_store(uri)
    _check_writable(checkpoint_root)
    client = client_for(uri)
    retire_dead_runs(client)
    runs = runs_of_config(client, experiment, config_hashes)
    if resume == "auto":
        _refuse_a_second_copy(runs)
        chosen = _most_progress(client, runs, checkpoint_root)
        if chosen is not None:
            job.resume_run_id, job.checkpoint = chosen
            _claim(client, job)
            return job
        log.warning(
            "resume=auto: no unfinished run of this config (hash %s) has a checkpoint; starting afresh", job.config_hash
        )
    elif resume:
        job.resume_run_id, job.checkpoint = resume, _explicit(client, resume, config_hashes, checkpoint_root)
        _claim(client, job)
        return job
    if sweep_dir and not force:
        done = [r for r in runs if r.info.status == "FINISHED" and "test_accuracy" in r.data.metrics]
        if done:
            job.finished_run = done[0]
    return job


def _refuse_a_second_copy(runs: list[MlflowRun]) -> None:
    """resume=auto must not start this configuration again while a live process trains it (dead ones were
    retired just before): it would become a second run of the same job."""
    live = [r for r in runs if r.info.status == "RUNNING"]
    if live:
        run = live[0]
        raise ConfigError(
            f"resume=auto: run {run.info.run_id} of this configuration is RUNNING now (process "
            f"{run.data.tags.get('pid', '?')} on {run.data.tags.get('host', '?')}); wait for it to end, or stop it "
            "and run this command again to continue it."
        )


def _claim(client: MlflowClient, job: Job) -> None:
    """Hold the run to continue for this process, so that two commands choosing it at the same moment do not
    both continue it; the second is told so."""
    assert job.resume_run_id is not None
    folder = checkpoint_folder(job.checkpoint_root, job.resume_run_id)
    claim = FileLock(str(folder / ".claim"), timeout=0)
    try:
        claim.acquire()
    except Timeout:
        status = None
    else:
        run = client.get_run(job.resume_run_id)
        status = run.info.status
        if status in ("KILLED", "FAILED"):  # still to continue once claimed: nobody took it meanwhile
            job.claim, job.resumed_fingerprint = claim, run.data.tags.get("dataset_fingerprint")
            return
        claim.release()
    raise ConfigError(
        f"resume: run {job.resume_run_id} ({job.name}) is being continued by another command right now"
        f"{f' (it is {status} now)' if status else ''}; wait for that command to end, then run this one again."
    )


def _check_writable(folder: str) -> None:
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=folder, prefix=".write_probe").close()
    except OSError as error:
        raise ConfigError(
            f"trainer.checkpoint_dir={folder} is not writable ({error}); point it at a writable "
            "folder, e.g. trainer.checkpoint_dir=/tmp/cifar_exp_checkpoints."
        ) from error


def _most_progress(
    client: MlflowClient, runs: list[MlflowRun], root: str
) -> Optional[tuple[str, checkpoint.Checkpoint]]:
    """The unfinished run of a config with the most epochs checkpointed (a damaged checkpoint is skipped);
    the other unfinished runs with checkpoints are retired, saying which run continues their config."""
    candidates = []
    for run in runs:
        if run.info.status == "FINISHED" or (run.info.status == "RUNNING" and not is_stale(run)):
            continue
        found = checkpoint.newest(checkpoint_folder(root, run.info.run_id))
        if found is not None:
            candidates.append((found[0], run))
    candidates.sort(key=lambda c: (c[0], c[1].info.start_time), reverse=True)
    chosen: Optional[tuple[str, checkpoint.Checkpoint]] = None
    for epochs, run in candidates:
        if chosen is None:
            try:
                loaded = checkpoint.latest(checkpoint_folder(root, run.info.run_id))
                if loaded is not None:
                    chosen = (run.info.run_id, loaded)
                    continue
                reason = "its checkpoint vanished"
            except CheckpointError as error:
                log.warning("resume=auto: skipping run %s: %s", run.info.run_id, error)
                reason = f"its checkpoint could not be read ({error})"
        else:
            reason = f"resume=auto continued run {chosen[0]} ({chosen[1].epochs_done} epochs) instead ({epochs} epochs)"
        _retire(client, run, f"superseded: {reason}", root)
    return chosen


def _retire(client: MlflowClient, run: MlflowRun, reason: str, root: str) -> None:
    """Close a run that will never be continued, and free its checkpoint's disk space."""
    if run.info.status == "RUNNING":
        mark_killed(client, run.info.run_id, reason)
    client.set_tag(run.info.run_id, "superseded", reason)
    shutil.rmtree(checkpoint_folder(root, run.info.run_id), ignore_errors=True)


def _explicit(
    client: MlflowClient, run_id: str, config_hashes: Sequence[str], checkpoint_root: str
) -> checkpoint.Checkpoint:
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise ConfigError(f"resume={run_id}: no such run in the tracking store ({error.message}).") from error
    if run.data.tags.get("config_hash") not in config_hashes:
        raise ConfigError(
            f"resume={run_id}: that run has another config (hash {run.data.tags.get('config_hash')}, "
            f"this one {config_hashes[0]}); resume it with its own command line, logged in its "
            f"'command' tag: {run.data.tags.get('command', '?')}"
        )
    if run.info.status == "FINISHED":
        raise ConfigError(f"resume={run_id}: that run already FINISHED; nothing to continue.")
    if run.info.status == "RUNNING" and not is_stale(run):
        raise ConfigError(
            f"resume={run_id}: that run is still RUNNING in process {run.data.tags.get('pid')} on "
            f"{run.data.tags.get('host')}; stop it first."
        )
    found = checkpoint.latest(checkpoint_folder(checkpoint_root, run_id))
    if found is None:
        raise ConfigError(
            f"resume={run_id}: no checkpoint in {checkpoint_folder(checkpoint_root, run_id)} "
            "(it died before its first epoch ended); start it afresh without resume."
        )
    return found
