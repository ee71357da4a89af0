"""How a job starts: afresh, continued from its checkpoint (``resume=<run id>|auto``), or skipped because
its configuration already FINISHED in this sweep's store. Also retires runs left RUNNING by a dead process.

Runs are matched by ``config_hash`` (see :func:`cifar_exp.config.config_hash`), logged as a tag.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional

from mlflow.entities import Run as MlflowRun
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from cifar_exp import checkpoint
from cifar_exp.errors import ConfigError
from cifar_exp.tracking.environment import is_stale
from cifar_exp.tracking.run import Run, mark_killed, tracked_run
from cifar_exp.tracking.store import client_for, prepare_store
from cifar_exp.tracking.sweep_parent import find_sweep_parent

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
    folder: Optional[Path] = None  # where this job's checkpoints go, once its run is open

    @property
    def epochs_done(self) -> int:
        """Epochs already trained (and checkpointed): training starts at this 0-based epoch."""
        return self.checkpoint.epochs_done if self.checkpoint else 0

    @contextmanager
    def open(self, tags: Mapping[str, str]) -> Iterator[Run]:
        """Open (or reopen) the job's run under its sweep parent; a FINISHED run's checkpoints are removed."""
        parent = None
        if self.uri and self.sweep_dir and not self.resume_run_id:
            parent = find_sweep_parent(self.uri, self.experiment, self.sweep_dir)
        with tracked_run(self.uri, self.experiment, self.name, parent, tags, self.resume_run_id) as run, \
                tempfile.TemporaryDirectory(prefix="cifar_exp_") as scratch:
            self.folder = checkpoint_folder(self.checkpoint_root, run.run_id) if run.enabled else Path(scratch)
            yield run
        if run.enabled:
            shutil.rmtree(self.folder, ignore_errors=True)


def checkpoint_folder(root: str, run_id: str) -> Path:
    return Path(root) / run_id


def runs_of_config(client: MlflowClient, experiment: str, config_hash: str) -> list[MlflowRun]:
    """All runs of the experiment whose ``config_hash`` tag matches, newest first (sweep parents excluded)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], filter_string=f"tags.config_hash = '{config_hash}'",
                              order_by=["attributes.start_time DESC"], max_results=1000)


def start_job(uri: Optional[str], experiment: str, name: str, config_hash: str, checkpoint_root: str,
              resume: Optional[str] = None, force: bool = False, sweep_dir: Optional[str] = None) -> Job:
    """Check the store and decide how this job starts; raises :class:`ConfigError` for a resume that
    cannot be honoured. Nothing is created in the store yet."""
    job = Job(uri, experiment, name, config_hash, checkpoint_root, sweep_dir)
    if uri is None:
        if resume:
            raise ConfigError("resume needs tracking (tracking.enabled=true): the run to continue lives in MLflow.")
        return job
    prepare_store(uri)
    client = client_for(uri)
    runs = runs_of_config(client, experiment, config_hash)
    if resume == "auto":
        for run in runs:
            found = _resumable(run, checkpoint_root)
            if found is not None:
                job.resume_run_id, job.checkpoint = run.info.run_id, found
                return job
        log.warning("resume=auto: no unfinished run of this config (hash %s) has a checkpoint; starting afresh",
                    config_hash)
    elif resume:
        job.resume_run_id, job.checkpoint = resume, _explicit(client, resume, config_hash, checkpoint_root)
        return job
    for run in runs:
        if is_stale(run):
            mark_killed(client, run.info.run_id, f"process {run.data.tags.get('pid')} died while RUNNING; "
                                                 "noticed by a later run of the same config")
    if sweep_dir and not force:
        done = [r for r in runs if r.info.status == "FINISHED" and "test_accuracy" in r.data.metrics]
        if done:
            job.finished_run = done[0]
    return job


def _resumable(run: MlflowRun, root: str) -> Optional[checkpoint.Checkpoint]:
    if run.info.status == "FINISHED" or (run.info.status == "RUNNING" and not is_stale(run)):
        return None
    return checkpoint.latest(checkpoint_folder(root, run.info.run_id))


def _explicit(client: MlflowClient, run_id: str, config_hash: str, checkpoint_root: str) -> checkpoint.Checkpoint:
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise ConfigError(f"resume={run_id}: no such run in the tracking store ({error.message}).") from error
    if run.data.tags.get("config_hash") != config_hash:
        raise ConfigError(f"resume={run_id}: that run has another config (hash {run.data.tags.get('config_hash')}, "
                          f"this one {config_hash}); resume it with its own command line, logged in its "
                          f"'command' tag: {run.data.tags.get('command', '?')}")
    if run.info.status == "FINISHED":
        raise ConfigError(f"resume={run_id}: that run already FINISHED; nothing to continue.")
    if run.info.status == "RUNNING" and not is_stale(run):
        raise ConfigError(f"resume={run_id}: that run is still RUNNING in process {run.data.tags.get('pid')} on "
                          f"{run.data.tags.get('host')}; stop it first.")
    found = checkpoint.latest(checkpoint_folder(checkpoint_root, run_id))
    if found is None:
        raise ConfigError(f"resume={run_id}: no checkpoint in {checkpoint_folder(checkpoint_root, run_id)} "
                          "(it died before its first epoch ended); start it afresh without resume.")
    return found
