"""Which run a job continues: ``resume=auto`` takes the unfinished run of its configuration with the most epochs
checkpointed (and retires the others), ``resume=<run id>`` checks that this run can be continued; either is then
claimed, so that two commands never continue one run.

A run's checkpoints live in ``<trainer.checkpoint_dir>/<run id>`` (:func:`checkpoint_folder`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Optional, Sequence

from filelock import FileLock, Timeout
from mlflow.entities import Run as MlflowRun
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from cifar_exp import checkpoint
from cifar_exp.errors import CheckpointError, ConfigError
from cifar_exp.identity import CONFIG_HASH_TAG, FINGERPRINT_TAG
from cifar_exp.tracking.environment import is_stale
from cifar_exp.tracking.run import TAG_ROLE, mark_killed

log = logging.getLogger(__name__)


def checkpoint_folder(root: str, run_id: str) -> Path:
    """Where the checkpoints of run ``run_id`` are kept."""
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
            filter_string=f"tags.{CONFIG_HASH_TAG} = '{config_hash}'",
            max_results=1000,
        )
    ]
    return sorted(runs, key=lambda r: r.info.start_time or 0, reverse=True)


def choose_auto(client: MlflowClient, runs: list[MlflowRun], root: str) -> Optional[tuple[str, checkpoint.Checkpoint]]:
    """``resume=auto``: the run among ``runs`` (one configuration's) to continue, and its checkpoint; None when
    no unfinished run has one. Refused while a process trains the configuration (it would become a second run
    of the same job); runs whose process died must have been retired first."""
    live = [r for r in runs if r.info.status == "RUNNING"]  # dead ones were retired by retire_dead_runs
    if live:
        run = live[0]
        raise ConfigError(
            f"resume=auto: run {run.info.run_id} of this configuration is RUNNING now (process "
            f"{run.data.tags.get('pid', '?')} on {run.data.tags.get('host', '?')}); wait for it to end, or stop it "
            "and run this command again to continue it."
        )
    return _most_progress(client, runs, root)


def check_explicit(client: MlflowClient, run_id: str, config_hashes: Sequence[str], root: str) -> checkpoint.Checkpoint:
    """``resume=<run id>``: that run's checkpoint, once the run is known to be one of this configuration's,
    unfinished, not trained by a live process, and checkpointed."""
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise ConfigError(f"resume={run_id}: no such run in the tracking store ({error.message}).") from error
    if run.data.tags.get(TAG_ROLE) == "sweep":
        raise ConfigError(
            f"resume={run_id}: that run is a sweep's parent ({run.info.run_name}), not a training run; continue a "
            "sweep with its own --multirun command and resume=auto, which continues each unfinished job."
        )
    if run.data.tags.get(CONFIG_HASH_TAG) not in config_hashes:
        raise ConfigError(
            f"resume={run_id}: that run has another config (hash {run.data.tags.get(CONFIG_HASH_TAG)}, "
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
    found = checkpoint.latest(checkpoint_folder(root, run_id))
    if found is None and run.data.tags.get("superseded"):
        raise ConfigError(
            f"resume={run_id}: that run will not be continued, and its checkpoint was removed: it was "
            f"{run.data.tags['superseded']}. The same command with resume=auto continues (or skips) this "
            "configuration as its store now stands."
        )
    if found is None:
        trial, reason = run.data.params.get("search.trial", "None"), run.data.tags.get("error")
        why = (
            f"it was trial {trial} of a search, and a trial is not continued: the search goes on with new trials"
            if trial != "None"
            else f"it FAILED ({reason}) and kept no checkpoint; start it afresh without resume"
            if run.info.status == "FAILED" and reason
            else "it died before its first epoch ended; start it afresh without resume"
        )
        raise ConfigError(f"resume={run_id}: no checkpoint in {checkpoint_folder(root, run_id)}: {why}.")
    return found


def claim(client: MlflowClient, run_id: str, name: str, root: str) -> tuple[FileLock, Optional[str]]:
    """Hold run ``run_id`` for this process, so that two commands choosing it at the same moment do not both
    continue it (the second is told so); returns the held lock and the dataset fingerprint the run was trained
    on. The system releases the lock when the process dies."""
    lock = FileLock(str(checkpoint_folder(root, run_id) / ".claim"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        status = None
    else:
        run = client.get_run(run_id)
        status = run.info.status
        if status in ("KILLED", "FAILED"):  # still to continue once claimed: nobody took it meanwhile
            return lock, run.data.tags.get(FINGERPRINT_TAG)
        lock.release()
    raise ConfigError(
        f"resume: run {run_id} ({name}) is being continued by another command right now"
        f"{f' (it is {status} now)' if status else ''}; wait for that command to end, then run this one again."
    )


def hold_configuration(root: str, config_hash: str, fingerprint: str, name: str) -> FileLock:
    """Hold a configuration on a dataset for this process while it plans and trains it, so that two commands
    started together (two sweeps, a sweep run twice) do not both train it: the second is told so, and its next
    run skips the result or continues the run. The system releases the lock when the process dies."""
    folder = Path(root) / ".training"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / f"{config_hash}-{fingerprint[:16]}.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(
            f"{name}: this configuration is being trained on this data by another command right now (another sweep "
            "started beside this one?); it is not trained twice. Once that command ends, this same command skips it "
            "if it FINISHED, or continues its run with resume=auto."
        ) from None
    return lock


def retire_unfinished(client: MlflowClient, runs: list[MlflowRun], finished_run_id: str, root: str) -> None:
    """The configuration FINISHED as run ``finished_run_id``: its unfinished runs that kept a checkpoint will never
    be continued (a second FINISHED run of one configuration would count twice), so they are retired."""
    for run in runs:
        if run.info.status in ("KILLED", "FAILED") and checkpoint_folder(root, run.info.run_id).exists():
            _retire(client, run, f"superseded: run {finished_run_id} FINISHED this configuration", root)


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
