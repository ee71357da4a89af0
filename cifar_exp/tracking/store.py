"""The tracking store's client and its MLflow experiment: one client per URI whose calls a stop signal never
cuts in two, the experiment the runs go to, and the lock that keeps an import whole. Whether a store is usable
at all is checked before any work by :mod:`cifar_exp.tracking.store_checks`."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import tempfile
from pathlib import Path
from typing import Any, Optional

import mlflow
from filelock import FileLock
from mlflow.entities import Experiment
from mlflow.tracking import MlflowClient

from cifar_exp import signals
from cifar_exp.config import sqlite_path
from cifar_exp.errors import TrackingError


def import_lock(uri: str) -> FileLock:
    """One import per store at a time on this machine, and no export while one runs (it would see runs whose links
    are not yet rewritten): a lock file beside a SQLite store, else in the temporary folder, named after the URI."""
    db = sqlite_path(uri)
    if db is not None:
        db = db.resolve()  # one lock for one file, under whichever name it is given
        return FileLock(str(db.parent / f"{db.name}.import.lock"), timeout=0)
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return FileLock(str(Path(tempfile.gettempdir()) / f"cifar_exp-import-{digest}.lock"), timeout=0)


def masked(uri: str) -> str:
    """The URI (or a text holding URIs) with any password replaced by ``***``: the user part runs to the last ``@``
    before the path, so a password holding ``@`` is hidden whole, and one without a user name too."""
    return re.sub(r"://([^:/@\s]*):[^/\s]*@", r"://\1:***@", uri)


class StoreClient(MlflowClient):
    """An MlflowClient whose public calls each finish before a stop signal takes effect (see
    :func:`cifar_exp.signals.deferred`), so a stop never leaves the store locked mid-transaction."""

    def __getattribute__(self, name: str) -> Any:
        found = super().__getattribute__(name)
        if name.startswith("_") or not callable(found):
            return found

        @functools.wraps(found)
        def whole(*args: Any, **kwargs: Any) -> Any:
            with signals.deferred():
                return found(*args, **kwargs)

        return whole


class _OneLineDatabaseErrors(logging.Filter):
    """MLflow logs the whole traceback of a database error it then raises anyway (a full disk, a locked file):
    keep its first line, so the user reads the raised error once, as our one paragraph."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.getMessage().startswith("SQLAlchemy database error"):
            record.msg, record.args = str(record.exc_info[1]).splitlines()[0], ()
            record.exc_info, record.exc_text = None, None
        return True


_DATABASE_LOG = logging.getLogger("mlflow.store.db.utils")
if not any(isinstance(f, _OneLineDatabaseErrors) for f in _DATABASE_LOG.filters):
    _DATABASE_LOG.addFilter(_OneLineDatabaseErrors())


def client_for(uri: str) -> MlflowClient:
    """A client bound to ``uri``: every call names its run id, so no global "active run" leaks between jobs,
    and no stop signal cuts a call in two."""
    with signals.deferred():  # opening a new store creates its schema
        return StoreClient(tracking_uri=uri)


def check_experiment(client: MlflowClient, name: str) -> Optional[Experiment]:
    """Experiment ``name`` as the store holds it (None where it has none yet). One deleted in the store (the UI's
    delete, ``mlflow experiments delete``) takes no runs: said before any work, not by the run that fails to be
    created once the data is loaded and the model built."""
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage == "deleted":
        raise TrackingError(
            f"tracking.experiment={name}: that experiment is deleted in {masked(client.tracking_uri)} (id "
            f"{found.experiment_id}), and a deleted experiment takes no runs; restore it (mlflow experiments restore "
            f"--experiment-id {found.experiment_id}, with MLFLOW_TRACKING_URI set to the store), or choose another "
            "tracking.experiment. Nothing was trained or logged."
        )
    return found


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created if missing; local stores keep artifacts beside the database."""
    found = check_experiment(client, name)
    if found is not None:
        return found.experiment_id
    db = sqlite_path(client.tracking_uri)
    location = (db.resolve().parent / "artifacts").as_uri() if db is not None else None  # sqlite:///relative.db too
    try:
        # The kind tag marks model-training runs for MLflow 3's UI; its model-training view itself needs
        # workflowType=machine_learning in the URL (cifar-exp ui prints it), else the experiment opens on GenAI pages.
        return client.create_experiment(
            name, artifact_location=location, tags={"mlflow.experimentKind": "custom_model_development"}
        )
    except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel job
        existing = client.get_experiment_by_name(name)
        if existing is None:
            raise
        return existing.experiment_id
