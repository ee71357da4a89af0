"""Everything MLflow: the store, run lifecycle and status, params and tags, per-epoch metrics, artifacts,
and the parent run of a sweep.

All calls go through :class:`mlflow.MlflowClient` with an explicit run id, so no module-level "active
run" leaks between the jobs that Hydra's basic launcher runs one after another in one process.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient

from cifar_exp.config import PROJECT_ROOT
from cifar_exp.errors import TrackingError

TAG_SWEEP = "cifar_exp.sweep_dir"
TAG_NOTE = "mlflow.note.content"  # the run's description, shown as markdown on its page in the MLflow UI
TAG_ROLE = "cifar_exp.role"
MAX_PARAM_LENGTH = 6000



def _sqlite_path(uri: str) -> Optional[Path]:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def prepare_store(uri: str) -> None:
    """Check the store is usable before any training: the SQLite folder writable, a server answering."""
    db = _sqlite_path(uri)
    if db is not None:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=db.parent, prefix=".write_probe")
            probe.close()
        except OSError as error:
            raise TrackingError(f"tracking.uri={uri}: the folder {db.parent} is not writable ({error}); "
                                "choose another store, e.g. tracking.uri=sqlite:////tmp/mlruns/mlflow.db.") from error
    elif uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
        except requests.RequestException as error:
            raise TrackingError(f"tracking.uri={uri}: the MLflow tracking server does not answer ({error}). "
                                "Start it (see the README's team setup) or log locally by leaving "
                                "tracking.uri at its default.") from error


def client_for(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created if missing; local stores keep artifacts beside the database."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    db = _sqlite_path(client.tracking_uri)
    location = (db.parent / "artifacts").as_uri() if db is not None else None
    try:
        # The kind tag makes MLflow 3's UI open the experiment on its runs table, not the GenAI overview.
        return client.create_experiment(name, artifact_location=location,
                                        tags={"mlflow.experimentKind": "custom_model_development"})
    except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel job
        return client.get_experiment_by_name(name).experiment_id


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"optimizer.lr": 1e-4, ...}."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _distribution_version(name: str) -> str:
    """The installed version of a distribution, or "unknown" (e.g. TensorFlow installed as tensorflow-cpu)."""
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def environment_tags() -> dict[str, str]:
    """Code version, library versions and the command line: what is needed to rerun a run."""
    import keras

    commit = _git("rev-parse", "HEAD")
    backend = keras.backend.backend()
    tags = {
        # A copy shipped without .git (a cluster node, a container) can name its commit in CIFAR_EXP_GIT_COMMIT.
        "git_commit": commit or os.environ.get("CIFAR_EXP_GIT_COMMIT") or "unknown",
        "git_dirty": str(bool(_git("status", "--porcelain", "--untracked-files=no"))).lower() if commit else "unknown",
        "python_version": platform.python_version(),
        "keras_version": keras.__version__,
        "keras_backend": backend,
        "keras_backend_version": _distribution_version(backend),
        "mlflow_version": mlflow.__version__,
        "command": " ".join([Path(sys.executable).name, "-m", "cifar_exp", *sys.argv[1:]]),
    }
    try:
        import tensorflow as tf

        tags["tensorflow_version"] = tf.__version__
    except ImportError:
        tags["tensorflow_version"] = "not installed"
    return tags


class Run:
    """One MLflow run, addressed by id; ``enabled=False`` makes every call a no-op (benchmarks)."""

    def __init__(self, client: Optional[MlflowClient], run_id: Optional[str]):
        self.client, self.run_id = client, run_id

    @property
    def enabled(self) -> bool:
        return self.run_id is not None

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.enabled:
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        if not self.enabled:
            return
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        if self.enabled:
            self.client.log_figure(self.run_id, figure, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        if self.enabled:
            self.client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        if self.enabled:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, folder: str | Path, artifact_path: Optional[str] = None) -> None:
        if self.enabled:
            self.client.log_artifacts(self.run_id, str(folder), artifact_path)


def process_tags() -> dict[str, str]:
    """Which process owns a RUNNING run, so a later run can tell a dead one from a live one."""
    return {"host": socket.gethostname(), "pid": str(os.getpid())}


def runs_of_config(client: MlflowClient, experiment: str, config_hash: str) -> list[MlflowRun]:
    """All runs of the experiment whose ``config_hash`` tag matches, newest first (sweep parents excluded)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], filter_string=f"tags.config_hash = '{config_hash}'",
                              order_by=["attributes.start_time DESC"], max_results=1000)


def is_stale(run: MlflowRun) -> bool:
    """RUNNING, but its process (on this host) is gone: killed with -9, or the machine went down."""
    if run.info.status != "RUNNING" or run.data.tags.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(run.data.tags.get("pid", "0")), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError):
        return False
    return int(run.data.tags.get("pid", "0")) <= 0


def mark_killed(client: MlflowClient, run_id: str, reason: str) -> None:
    client.set_tag(run_id, "error", reason)
    client.set_terminated(run_id, "KILLED")


@contextmanager
def tracked_run(uri: Optional[str], experiment: str, run_name: str, parent_run_id: Optional[str] = None,
                tags: Optional[Mapping[str, str]] = None, resume_run_id: Optional[str] = None) -> Iterator[Run]:
    """Open a run (or reopen ``resume_run_id``) and guarantee its end status: FINISHED, FAILED (error
    logged) or KILLED (Ctrl-C). ``uri=None`` gives a disabled run that logs nothing.
    """
    if uri is None:
        yield Run(None, None)
        return
    client = client_for(uri)
    all_tags = {**(tags or {}), **process_tags()}
    if resume_run_id:
        client.update_run(resume_run_id, status="RUNNING")
        run = Run(client, resume_run_id)
        run.set_tags(all_tags)
    else:
        all_tags["mlflow.runName"] = run_name
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = Run(client, client.create_run(experiment_id(client, experiment), tags=all_tags,
                                            run_name=run_name).info.run_id)
    try:
        yield run
    except KeyboardInterrupt:
        _end(run, "KILLED", "interrupted (Ctrl-C / SIGINT)")
        raise
    except BaseException as error:
        _end(run, "FAILED", "".join(traceback.format_exception(error)))
        raise
    else:
        client.set_terminated(run.run_id, "FINISHED")


def _end(run: Run, status: str, reason: str) -> None:
    """Record why a run ended and set its status; never raises, so the original error is what the user sees."""
    try:
        run.set_tags({"error": reason.strip().splitlines()[-1][:5000]})
        run.log_text(reason, "error.txt")
    finally:
        run.client.set_terminated(run.run_id, status)


def open_sweep_parent(uri: str, experiment: str, sweep_dir: str, name: str, overrides: list[str],
                      launcher: str = "") -> str:
    """Create the parent run of a sweep (and with it the store's schema, before parallel jobs race on it)."""
    prepare_store(uri)
    client = client_for(uri)
    run = client.create_run(experiment_id(client, experiment), run_name=name,
                            tags={TAG_SWEEP: sweep_dir, TAG_ROLE: "sweep", "mlflow.runName": name,
                                  "launcher": launcher, **process_tags(),
                                  "command": " ".join(["python", "-m", "cifar_exp", *sys.argv[1:]])})
    Run(client, run.info.run_id).log_params({"sweep_overrides": " ".join(overrides)})
    return run.info.run_id


def find_sweep_parent(uri: str, experiment: str, sweep_dir: str) -> Optional[str]:
    """The id of the RUNNING parent run of the sweep writing to ``sweep_dir``, if any."""
    client = client_for(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.`{TAG_SWEEP}` = '{sweep_dir}'",
                              max_results=1)
    return runs[0].info.run_id if runs else None


def close_sweep_parent(uri: str, parent_run_id: str) -> dict[str, Any]:
    """Summarise the sweep's children on the parent (jobs, failures, best job) and end it; idempotent."""
    client = client_for(uri)
    parent = client.get_run(parent_run_id)
    if parent.info.status != "RUNNING":
        return {}
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=10000)
    failed = [c for c in children if c.info.status != "FINISHED"]
    finished = [c for c in children if "test_accuracy" in c.data.metrics]
    summary: dict[str, Any] = {"jobs": len(children), "failed": len(failed),
                               "failed_jobs": [c.info.run_name for c in failed]}
    run = Run(client, parent_run_id)
    metrics = {"jobs": len(children), "failed_jobs": len(failed)}
    if finished:
        best = max(finished, key=lambda c: c.data.metrics["test_accuracy"])
        summary.update(best_job=best.info.run_name, best_run_id=best.info.run_id,
                       best_test_accuracy=best.data.metrics["test_accuracy"])
        metrics["best_test_accuracy"] = best.data.metrics["test_accuracy"]
        run.set_tags({"best_job": best.info.run_name, "best_run_id": best.info.run_id})
    run.log_metrics(metrics)
    run.log_text(json.dumps(summary, indent=2), "sweep_summary.json")
    note = f"{len(children)} jobs, {len(failed)} failed" + (f" ({', '.join(summary['failed_jobs'])})" if failed else "")
    if finished:
        note += f"; best: **{best.info.run_name}**, test accuracy {best.data.metrics['test_accuracy']:.2%}"
    run.set_tags({TAG_NOTE: note + "."})
    client.set_terminated(parent_run_id, "FAILED" if failed else "FINISHED")
    return summary
