"""One MLflow run and its end status: whatever happens inside :func:`tracked_run`, the run ends FINISHED,
FAILED (with its reason) or KILLED, never silently RUNNING."""

from __future__ import annotations

import logging
import time
import traceback
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from mlflow.entities import Metric, Param, RunTag
from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME, MLFLOW_RUN_NOTE
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

from cifar_exp import signals
from cifar_exp.errors import briefly
from cifar_exp.signals import Stopped
from cifar_exp.tracking.environment import process_tags
from cifar_exp.tracking.store import client_for, experiment_id, masked

TAG_NOTE = MLFLOW_RUN_NOTE  # the run's description, shown as markdown on its page in the MLflow UI
TAG_ROLE = "cifar_exp.role"
TAG_BEST_RUN = "best_run_id"  # on a sweep's parent: its best job's run
TAG_RESUMED_FROM_SWEEP = "resumed_from_sweep"  # on a run continued by another sweep: the parent it began under
TAG_SKIPPED = "cifar_exp.skipped."  # on a sweep's parent, + the id of the FINISHED run holding a skipped job's result

log = logging.getLogger(__name__)


def has_result(run: MlflowRun) -> bool:
    """Whether a run FINISHED with a test accuracy: a training run's result, the one thing reports, the skipping of
    a configuration done before and the records count (a run cut short, or one that only evaluates, has none)."""
    return run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics


def without_passwords(values: Mapping[str, Any]) -> dict[str, str]:
    """Params or tags as the strings MLflow keeps, any password in a URI among them (``tracking.uri``, the command
    line, a search's storage) masked: whoever can read the store must not read the credentials of another."""
    return {key: masked(str(value)) for key, value in values.items()}


class Run:
    """One MLflow run, addressed by id; every call names it, so no global "active run" is involved."""

    enabled = True

    def __init__(self, client: MlflowClient, run_id: str):
        self.client, self.run_id = client, run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        # log_batch splits long lists into the store's batch limits itself
        self.client.log_batch(
            self.run_id, params=[Param(k, v[:MAX_PARAM_VAL_LENGTH]) for k, v in without_passwords(params).items()]
        )

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in without_passwords(tags).items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def logged_steps(self, key: str) -> set[int]:
        """The steps at which metric ``key`` was logged."""
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, masked(text), artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, folder: str | Path, artifact_path: Optional[str] = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)


class NoRun(Run):
    """Tracking switched off (``tracking.enabled=false``, benchmarks): every call does nothing."""

    enabled = False

    def __init__(self) -> None:
        self.client, self.run_id = None, None  # type: ignore[assignment]

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        pass

    def logged_steps(self, key: str) -> set[int]:
        return set()

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        pass

    def log_artifacts(self, folder: str | Path, artifact_path: Optional[str] = None) -> None:
        pass


def mark_killed(client: MlflowClient, run_id: str, reason: str) -> None:
    """End a run whose process is gone as KILLED, saying why (the tag, and ``errors/<UTC time>-KILLED.txt``,
    which stays as the run's history once it is resumed)."""
    client.set_tag(run_id, "error", reason)
    try:
        client.log_text(run_id, reason, f"errors/{_stamp()}-KILLED.txt")
    except Exception as failure:  # the artifact store may be what killed it (a full disk): the tag says why
        log.warning("could not keep why run %s ended as a file: %s", run_id, briefly(failure))
    client.set_terminated(run_id, "KILLED")


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


@contextmanager
def tracked_run(
    uri: Optional[str],
    experiment: str,
    run_name: str,
    parent_run_id: Optional[str] = None,
    tags: Optional[Mapping[str, str]] = None,
    resume_run_id: Optional[str] = None,
) -> Iterator[Run]:
    """Open a run (or reopen ``resume_run_id``) and guarantee its end status: FINISHED, FAILED (error
    logged) or KILLED (Ctrl-C). ``uri=None`` gives a disabled run that logs nothing.
    """
    if uri is None:
        yield NoRun()
        return
    client = client_for(uri)
    run: Optional[Run] = None
    try:
        with signals.deferred():  # a stop while the run opens ends it KILLED once it is open, not left RUNNING
            run = open_run(client, experiment, run_name, parent_run_id, tags, resume_run_id)
        yield run
    except KeyboardInterrupt as error:
        if run is not None:
            if isinstance(error, Stopped) and error.run_id is None:
                error.run_id = run.run_id  # named in the message even when the stop came before the run was handed out
            reason = str(error) or "interrupted (Ctrl-C / SIGINT)"
            _end(run, "KILLED", reason, reason, error)
        raise
    except BaseException as error:
        if run is not None:
            _end(run, "FAILED", briefly(error), "".join(traceback.format_exception(error)), error)
        raise
    else:
        try:
            with signals.deferred():  # cut in the middle, the write would leave the run RUNNING
                client.set_terminated(run.run_id, "FINISHED")
        except Stopped as stop:
            stop.finished_run_id = run.run_id
            stop.details.append(f"run {run.run_id} had FINISHED just before it")
            raise


def open_run(
    client: MlflowClient,
    experiment: str,
    run_name: str,
    parent_run_id: Optional[str],
    tags: Optional[Mapping[str, str]],
    resume_run_id: Optional[str],
) -> Run:
    """Create the run, or set ``resume_run_id`` RUNNING again without the stale tags of its interruption."""
    all_tags = {**(tags or {}), **process_tags()}
    if resume_run_id:
        client.update_run(resume_run_id, status="RUNNING")
        previous = client.get_run(resume_run_id).data.tags
        for stale in ("error", "superseded"):
            if stale in previous:
                client.delete_tag(resume_run_id, stale)  # the interruption is history once the run goes on
        if parent_run_id and previous.get(MLFLOW_PARENT_RUN_ID) not in (None, parent_run_id):
            all_tags[TAG_RESUMED_FROM_SWEEP] = previous[MLFLOW_PARENT_RUN_ID]  # now found under the sweep that ends it
            all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        run = Run(client, resume_run_id)
        run.set_tags(all_tags)
        return run
    all_tags[MLFLOW_RUN_NAME] = run_name
    if parent_run_id:
        all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    created = client.create_run(experiment_id(client, experiment), tags=without_passwords(all_tags), run_name=run_name)
    return Run(client, created.info.run_id)


def _end(run: Run, status: str, summary: str, reason: str, error: BaseException) -> None:
    """Record why a run ended (``summary``: the error's type and the first line of its message, as the tag; the
    whole ``reason`` as ``errors/<UTC time>-<status>.txt``, one file per end, so a run resumed after it keeps
    the history without a stale error at its top) and set its status. Never raises, so the original error is
    what the user sees; a store that cannot take the record is added to that error's message instead. A store
    that comes back while this runs (a server restarting) gets the reason after the status, not never."""
    stamp = _stamp()

    def record_why() -> bool:
        try:
            run.set_tags({"error": summary[:5000]})
            run.log_text(reason, f"errors/{stamp}-{status}.txt")
            return True
        except Exception as failure:
            log.warning("could not record why run %s ended: %s", run.run_id, briefly(failure))
            return False

    def unmarked(why: str) -> None:
        said = f"the store could not mark run {run.run_id} {status} ({why})"
        if isinstance(error, Stopped):  # what continues the run is said by whoever names it
            error.unmarked_run_id = run.run_id
            error.details.append(said)
        else:
            error.add_note(f"{said}; the next command on this store marks it KILLED")

    recorded = record_why()
    if not recorded and isinstance(error, Stopped):  # a stop is not kept waiting on a store that just failed
        unmarked("it did not take the reason either")
        return
    try:
        run.client.set_terminated(run.run_id, status)
    except Exception as failure:
        unmarked(briefly(failure))
        return
    if not recorded:
        record_why()
