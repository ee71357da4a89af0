"""The tracking store: checked before any work starts, and the MLflow experiment the runs go to."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import mlflow
from mlflow.tracking import MlflowClient

from cifar_exp.errors import TrackingError


def sqlite_path(uri: str) -> Optional[Path]:
    """The database file of a ``sqlite:///`` URI, else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def prepare_store(uri: str) -> None:
    """Check the store is usable before any training: the SQLite folder writable, a server answering."""
    db = sqlite_path(uri)
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
    """A client bound to ``uri``: every call names its run id, so no global "active run" leaks between jobs."""
    return MlflowClient(tracking_uri=uri)


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created if missing; local stores keep artifacts beside the database."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    db = sqlite_path(client.tracking_uri)
    location = (db.parent / "artifacts").as_uri() if db is not None else None
    try:
        # The kind tag marks model-training runs for MLflow 3's UI; its model-training view itself needs
        # workflowType=machine_learning in the URL (cifar-exp ui prints it), else the experiment opens on GenAI pages.
        return client.create_experiment(name, artifact_location=location,
                                        tags={"mlflow.experimentKind": "custom_model_development"})
    except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel job
        return client.get_experiment_by_name(name).experiment_id
