"""The parent run of a sweep: opened before the first job, found by each job through the sweep folder's
tag, closed after the last job with a summary of its children."""

from __future__ import annotations

import json
import logging
from typing import Any, Iterable, Optional

from mlflow.entities import Run as MlflowRun
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from cifar_exp.identity import RUN_ID
from cifar_exp.tracking.environment import command_line, is_stale
from cifar_exp.tracking.registry import register_best
from cifar_exp.tracking.run import TAG_BEST_RUN, TAG_NOTE, TAG_ROLE, TAG_SKIPPED, Run, has_result, open_run
from cifar_exp.tracking.store import client_for
from cifar_exp.tracking.store_checks import prepare_store

TAG_SWEEP = "cifar_exp.sweep_dir"
TAG_FAILED_JOB = "cifar_exp.failed_job."  # + the job's number: a job that failed, on its sweep's parent
TAG_JOB_NUM = "cifar_exp.job_num"  # on a sweep's child run: the Hydra job number that ran it
ABORTED = "the sweep stopped on an error outside its jobs (in the sweeper or the launcher; the command printed it)"

log = logging.getLogger(__name__)


def open_sweep_parent(
    uri: str, experiment: str, sweep_dir: str, name: str, overrides: list[str], launcher: str = ""
) -> str:
    """Create the parent run of a sweep (and with it the store's schema, before parallel jobs race on it)."""
    prepare_store(uri)
    client = client_for(uri)
    tags = {TAG_SWEEP: sweep_dir, TAG_ROLE: "sweep", "launcher": launcher, "command": command_line()}
    run = open_run(client, experiment, name, None, tags, None)
    run.log_params({"sweep_overrides": " ".join(overrides)})
    return run.run_id


def sweep_children(client: MlflowClient, parent: MlflowRun) -> list[MlflowRun]:
    """The runs a sweep's jobs opened under its parent (not those it skipped: see :func:`skipped_runs`)."""
    return client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        max_results=50000,
    )


def report_experiment(parent: MlflowRun) -> Optional[str]:
    """The report experiment a sweep's parent ran (``+experiment=<name>``, which names it ``sweep-<name>``); None
    for a plain sweep, even one of the same keys (``--multirun dropout=a,b`` is named ``sweep-dropout`` too)."""
    name = (parent.info.run_name or "").removeprefix("sweep-")
    return name if f"+experiment={name}" in parent.data.params.get("sweep_overrides", "").split() else None


def find_sweep_parent(uri: str, experiment: str, sweep_dir: str) -> Optional[str]:
    """The id of the parent run of the sweep writing to ``sweep_dir``, if any."""
    client = client_for(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.`{TAG_SWEEP}` = '{sweep_dir}'", max_results=1)
    return runs[0].info.run_id if runs else None


def live_sweep_parent(uri: str, experiment: str, sweep_dir: str) -> Optional[MlflowRun]:
    """A sweep still running (its process alive) whose jobs write to ``sweep_dir``: a second sweep there would
    have its jobs find the other's parent."""
    client = client_for(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    running = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{TAG_SWEEP}` = '{sweep_dir}' and attributes.status = 'RUNNING'",
        max_results=100,
    )
    return next((run for run in running if not is_stale(run)), None)


def close_sweep_parent(
    uri: str,
    parent_run_id: str,
    register_as: Optional[str] = None,
    ended: Optional[str] = None,
    reason: str = "",
    search: bool = False,
    aborted: bool = False,
) -> dict[str, Any]:
    """Summarise the sweep's children on the parent (jobs, failures, best job) and end it: FINISHED, FAILED if
    a job failed, or ``ended`` (KILLED when the sweep was stopped, with its ``reason``); FAILED too where the sweep
    ``aborted`` (Hydra never reached its end) without a failed job, on an error outside its jobs; idempotent. With
    ``register_as``, the best job's model is registered under that name (see :func:`register_best`). A search
    (``search``) names no best job here: its best is the study's, by the validation metric, and its stopped trials
    are not continued."""
    client = client_for(uri)
    parent = client.get_run(parent_run_id)
    if parent.info.status != "RUNNING":
        return {}
    children = sweep_children(client, parent)
    skipped = skipped_jobs(parent)
    without_run = _failed_without_run(parent, children)
    # A job the sweep's own stop ended KILLED was stopped, not failed: the stop is said as such below.
    by_stop = [c for c in children if ended and c.info.status == "KILLED"]
    stopped = [c.info.run_name for c in by_stop]
    failed = [c.info.run_name for c in children if c.info.status != "FINISHED" and c not in by_stop] + without_run
    if aborted and not ended and not failed:
        ended, reason = "FAILED", ABORTED
    finished = [c for c in [*children, *_runs(client, skipped)] if has_result(c)]
    jobs = len(children) + len(without_run)
    summary: dict[str, Any] = {"jobs": jobs, "failed": len(failed), "failed_jobs": failed}
    run = Run(client, parent_run_id)
    metrics: dict[str, float] = {"jobs": jobs, "failed_jobs": len(failed)}
    note = f"{jobs} jobs, {len(failed)} failed" + (f" ({'; '.join(failed)})" if failed else "")
    if finished and not search:
        note += _record_best(run, max(finished, key=lambda c: c.data.metrics["test_accuracy"]), register_as, summary)
        metrics["best_test_accuracy"] = summary["best_test_accuracy"]
    if skipped:
        summary["skipped_jobs"] = skipped
        metrics["skipped_jobs"] = len(skipped)
        note += _skipped_note(skipped, children)
    if stopped:
        summary["stopped_jobs"] = stopped
        note += f"; stopped: {', '.join(stopped)}"
    if ended:
        summary["ended"] = reason
        if ended != "FAILED" and not search:
            summary["not_started"] = "any jobs still queued at the stop were not started"
        note = _ending_note(ended, reason, note, search)
        run.set_tags({"error": reason})
    run.log_metrics(metrics)
    run.log_text(json.dumps(summary, indent=2), "sweep_summary.json")
    run.set_tags({TAG_NOTE: note + "."})
    client.set_terminated(parent_run_id, ended or ("FAILED" if failed else "FINISHED"))
    return summary


def _record_best(run: Run, best: MlflowRun, register_as: Optional[str], summary: dict[str, Any]) -> str:
    """Tag the sweep's best job on its parent (registering its model as ``register_as``), add it to ``summary``;
    returns what the parent's note says of it."""
    accuracy = best.data.metrics["test_accuracy"]
    summary.update(best_job=best.info.run_name, best_run_id=best.info.run_id, best_test_accuracy=accuracy)
    run.set_tags({"best_job": best.info.run_name, TAG_BEST_RUN: best.info.run_id})
    note = f"; best: **{best.info.run_name}**, test accuracy {accuracy:.2%}"
    if register_as:
        registered = register_best(run.client, best.info.run_id, register_as)
        summary["registered"] = registered
        run.set_tags({"registered_model": registered})
        note += f"; registered: {registered}"
    return note


def _skipped_note(skipped: dict[str, str], children: list[MlflowRun]) -> str:
    """What the parent's note says of the skipped jobs: those FINISHED before, and those repeating a job of this
    sweep (a sweep listing one configuration twice trains it once)."""
    ours = {c.info.run_id for c in children}
    note = ""
    for said, jobs_of in (("already FINISHED in earlier runs", False), ("the same configuration as its job", True)):
        these = {run_id: name for run_id, name in skipped.items() if (run_id in ours) == jobs_of}
        if these:
            note += f"; {len(these)} skipped, {said}: " + ", ".join(f"{n} ({r})" for r, n in these.items())
    return note


def _ending_note(ended: str, reason: str, note: str, search: bool) -> str:
    """The parent's note for a sweep that did not simply finish: why it ended, then how the same command goes on."""
    if ended == "FAILED":
        again = "the same command" if search else "the same command with resume=auto"
        return f"FAILED: {reason}. {note}; {again} goes on"
    goes_on = (
        "; the same command goes on with new trials (a stopped trial is FAILED in the study, not continued)"
        if search
        else "; any jobs still queued at the stop were not started: the same command with resume=auto "
        "runs them, continues the KILLED ones from their checkpoints and skips the FINISHED"
    )
    return f"{ended}: {reason}. {note}{goes_on}"


def _failed_without_run(parent: MlflowRun, children: list[MlflowRun]) -> list[str]:
    """The jobs that failed before their run existed (a bad dataset, a refused resume), as ``#<n> (<overrides>):
    <error>``: recorded on the parent by :func:`note_failed_job`, left out where the job's run is a child."""
    with_run = {c.data.tags.get(TAG_JOB_NUM) for c in children}
    failed = {k.removeprefix(TAG_FAILED_JOB): v for k, v in parent.data.tags.items() if k.startswith(TAG_FAILED_JOB)}
    numbers = sorted((num for num in failed if num not in with_run), key=int)
    return [f"#{num} {failed[num]}" for num in numbers]


def skipped_jobs(parent: MlflowRun) -> dict[str, str]:
    """The jobs a sweep skipped because their configuration had FINISHED before: the id of the run holding the
    job's result -> the job's name (two jobs of a sweep can share a name: it leaves out batch size, say). Sweeps
    recorded before kept name -> run id."""
    skipped = {}
    for key, value in parent.data.tags.items():
        if key.startswith(TAG_SKIPPED):
            run_id, name = key.removeprefix(TAG_SKIPPED), value
            if not RUN_ID.fullmatch(run_id):
                run_id, name = name, run_id
            skipped[run_id] = name
    return skipped


def skipped_runs(client: MlflowClient, parent: MlflowRun) -> list[MlflowRun]:
    """The runs holding the results of the jobs a sweep skipped (perhaps filed under another report experiment
    that shares the configuration), those the store still holds."""
    return _runs(client, skipped_jobs(parent))


def _runs(client: MlflowClient, run_ids: Iterable[str]) -> list[MlflowRun]:
    """The runs of these ids that the store still holds."""
    found = []
    for run_id in run_ids:
        try:
            found.append(client.get_run(run_id))
        except MlflowException:
            log.warning("run %s, skipped by this sweep as FINISHED, is no longer in the store", run_id)
    return found


def note_failed_job(uri: str, parent_run_id: str, job_num: int, overrides: list[str], said: str) -> None:
    """Record on the parent that job ``job_num`` failed and why, so a job that failed before its run existed
    still counts in the sweep's summary (cut to MLflow's limit on a tag's value)."""
    value = f"({' '.join(overrides) or 'no overrides'}): {said}"
    client_for(uri).set_tag(parent_run_id, f"{TAG_FAILED_JOB}{job_num}", value[:MAX_TAG_VAL_LENGTH])


def note_skipped_job(uri: str, parent_run_id: str, job_name: str, finished_run_id: str) -> None:
    """Record on the parent that a job was skipped because its config already FINISHED as another run."""
    client_for(uri).set_tag(parent_run_id, f"{TAG_SKIPPED}{finished_run_id}", job_name)
