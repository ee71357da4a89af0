"""The parent run of a sweep: opened before the first job, found by each job through the sweep folder's
tag, closed after the last job with a summary of its children."""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from cifar_exp.errors import ModelError
from cifar_exp.tracking.environment import command_line, process_tags
from cifar_exp.tracking.registry import register_run
from cifar_exp.tracking.run import TAG_NOTE, TAG_ROLE, Run
from cifar_exp.tracking.store import client_for, experiment_id, prepare_store

TAG_SWEEP = "cifar_exp.sweep_dir"
TAG_SKIPPED = "cifar_exp.skipped."

log = logging.getLogger(__name__)


def open_sweep_parent(
    uri: str, experiment: str, sweep_dir: str, name: str, overrides: list[str], launcher: str = ""
) -> str:
    """Create the parent run of a sweep (and with it the store's schema, before parallel jobs race on it)."""
    prepare_store(uri)
    client = client_for(uri)
    run = client.create_run(
        experiment_id(client, experiment),
        run_name=name,
        tags={
            TAG_SWEEP: sweep_dir,
            TAG_ROLE: "sweep",
            "mlflow.runName": name,
            "launcher": launcher,
            **process_tags(),
            "command": command_line(),
        },
    )
    Run(client, run.info.run_id).log_params({"sweep_overrides": " ".join(overrides)})
    return run.info.run_id


def find_sweep_parent(uri: str, experiment: str, sweep_dir: str) -> Optional[str]:
    """The id of the parent run of the sweep writing to ``sweep_dir``, if any."""
    client = client_for(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.`{TAG_SWEEP}` = '{sweep_dir}'", max_results=1)
    return runs[0].info.run_id if runs else None


def close_sweep_parent(
    uri: str, parent_run_id: str, register_as: Optional[str] = None, ended: Optional[str] = None, reason: str = ""
) -> dict[str, Any]:
    """Summarise the sweep's children on the parent (jobs, failures, best job) and end it: FINISHED, FAILED if
    a job failed, or ``ended`` (KILLED when the sweep was stopped, with its ``reason``); idempotent. With
    ``register_as``, the best job's model is registered under that name (see :func:`register_best`)."""
    client = client_for(uri)
    parent = client.get_run(parent_run_id)
    if parent.info.status != "RUNNING":
        return {}
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=10000
    )
    failed = [c for c in children if c.info.status != "FINISHED"]
    finished = [c for c in children if c.info.status == "FINISHED" and "test_accuracy" in c.data.metrics]
    summary: dict[str, Any] = {
        "jobs": len(children),
        "failed": len(failed),
        "failed_jobs": [c.info.run_name for c in failed],
    }
    run = Run(client, parent_run_id)
    metrics: dict[str, float] = {"jobs": len(children), "failed_jobs": len(failed)}
    note = f"{len(children)} jobs, {len(failed)} failed" + (f" ({', '.join(summary['failed_jobs'])})" if failed else "")
    if finished:
        best = max(finished, key=lambda c: c.data.metrics["test_accuracy"])
        summary.update(
            best_job=best.info.run_name,
            best_run_id=best.info.run_id,
            best_test_accuracy=best.data.metrics["test_accuracy"],
        )
        metrics["best_test_accuracy"] = best.data.metrics["test_accuracy"]
        run.set_tags({"best_job": best.info.run_name, "best_run_id": best.info.run_id})
        note += f"; best: **{best.info.run_name}**, test accuracy {best.data.metrics['test_accuracy']:.2%}"
        if register_as:
            registered = register_best(client, best.info.run_id, register_as)
            summary["registered"] = registered
            run.set_tags({"registered_model": registered})
            note += f"; registered: {registered}"
    skipped = {k.removeprefix(TAG_SKIPPED): v for k, v in parent.data.tags.items() if k.startswith(TAG_SKIPPED)}
    if skipped:
        summary["skipped_jobs"] = skipped
        metrics["skipped_jobs"] = len(skipped)
        note += f"; {len(skipped)} skipped, already FINISHED in earlier runs: " + ", ".join(
            f"{name} ({run_id})" for name, run_id in skipped.items()
        )
    if ended:
        summary["ended"] = reason
        summary["not_started"] = "jobs still queued at the stop were not started"
        note = (
            f"{ended}: {reason}. "
            + note
            + (
                "; jobs still queued at the stop were not started: the same command with resume=auto runs them, "
                "continues the KILLED ones from their checkpoints and skips the FINISHED"
            )
        )
        run.set_tags({"error": reason})
    run.log_metrics(metrics)
    run.log_text(json.dumps(summary, indent=2), "sweep_summary.json")
    run.set_tags({TAG_NOTE: note + "."})
    client.set_terminated(parent_run_id, ended or ("FAILED" if failed else "FINISHED"))
    return summary


def note_skipped_job(uri: str, parent_run_id: str, job_name: str, finished_run_id: str) -> None:
    """Record on the parent that a job was skipped because its config already FINISHED as another run."""
    client_for(uri).set_tag(parent_run_id, f"{TAG_SKIPPED}{job_name}", finished_run_id)


def register_best(client: MlflowClient, run_id: str, name: str) -> str:
    """Register the sweep's best run under ``name``; the alias ``@best`` moves to it unless the version it holds
    scored higher. Returns what happened, in words; a failure is logged and said, never raised (the sweep ran)."""
    try:
        registration = register_run(client, run_id, name, only_if_better=True)
    except (ModelError, MlflowException) as error:
        log.warning("could not register the sweep's best run %s as %r: %s", run_id, name, error)
        return f"not registered ({error})"
    if registration.alias:
        return f"models:/{name}@{registration.alias} (version {registration.version})"
    return f"models:/{name}/{registration.version} (@best stays on a version with a higher test accuracy)"
