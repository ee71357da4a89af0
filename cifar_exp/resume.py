"""How a job starts: fresh, continued from its checkpoint (``resume=<run id>|auto``), or skipped because
its configuration already FINISHED in this sweep's store. Also retires runs left RUNNING by a dead process.

Runs are matched by ``config_hash`` (see :func:`cifar_exp.config.config_hash`), logged as a tag.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mlflow.entities import Run as MlflowRun
from mlflow.exceptions import MlflowException

from cifar_exp import checkpoint, tracking
from cifar_exp.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Start:
    resume_run_id: Optional[str] = None
    checkpoint: Optional[checkpoint.Checkpoint] = None
    finished_run: Optional[MlflowRun] = None  # set when the job is skipped


def checkpoint_folder(root: str, run_id: str) -> Path:
    return Path(root) / run_id


def _resumable(run: MlflowRun, root: str) -> Optional[checkpoint.Checkpoint]:
    if run.info.status == "FINISHED" or (run.info.status == "RUNNING" and not tracking.is_stale(run)):
        return None
    return checkpoint.latest(checkpoint_folder(root, run.info.run_id))


def plan(resume: Optional[str], force: bool, in_sweep: bool, uri: Optional[str], experiment: str,
         config_hash: str, checkpoint_root: str) -> Start:
    """Decide how this job starts; raises :class:`ConfigError` for a resume that cannot be honoured."""
    if uri is None:
        if resume:
            raise ConfigError("resume needs tracking (tracking.enabled=true): the run to continue lives in MLflow.")
        return Start()
    client = tracking.client_for(uri)
    runs = tracking.runs_of_config(client, experiment, config_hash)
    if resume == "auto":
        for run in runs:
            found = _resumable(run, checkpoint_root)
            if found is not None:
                return Start(run.info.run_id, found)
        log.warning("resume=auto: no unfinished run of this config (hash %s) has a checkpoint; starting afresh",
                    config_hash)
    elif resume:
        return Start(resume, _explicit(client, resume, config_hash, checkpoint_root))
    for run in runs:
        if tracking.is_stale(run):
            tracking.mark_killed(client, run.info.run_id, f"process {run.data.tags.get('pid')} died while RUNNING; "
                                                          "noticed by a later run of the same config")
    if in_sweep and not force:
        done = [r for r in runs if r.info.status == "FINISHED" and "test_accuracy" in r.data.metrics]
        if done:
            return Start(finished_run=done[0])
    return Start()


def _explicit(client, run_id: str, config_hash: str, checkpoint_root: str) -> checkpoint.Checkpoint:
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
    if run.info.status == "RUNNING" and not tracking.is_stale(run):
        raise ConfigError(f"resume={run_id}: that run is still RUNNING in process {run.data.tags.get('pid')} on "
                          f"{run.data.tags.get('host')}; stop it first.")
    found = checkpoint.latest(checkpoint_folder(checkpoint_root, run_id))
    if found is None:
        raise ConfigError(f"resume={run_id}: no checkpoint in {checkpoint_folder(checkpoint_root, run_id)} "
                          "(it died before its first epoch ended); start it afresh without resume.")
    return found
