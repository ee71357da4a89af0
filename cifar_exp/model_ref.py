"""What ``cifar-exp predict`` and ``cifar-exp evaluate`` accept as a model, resolved and loaded with its labels:

- an MLflow model URI: ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``models:/<model id>``,
  ``runs:/<run id>/<model name>`` (``report_cnn``); also ``<name>@<alias>`` and a logged model id ``m-...``
  without the scheme;
- a run id (32 hex digits): that run's logged model, or, for runs logged before models were MLflow Models, its
  ``model/model.h5`` artifact;
- a file: a ``.h5`` or ``.keras`` Keras model (labels from the ``.h5`` itself, where a run wrote them, or from a
  ``labels.json`` beside it), or an MLflow model folder (holding ``MLmodel``).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from cifar_exp.errors import ModelError, briefly, server_gave_up
from cifar_exp.identity import RUN_ID
from cifar_exp.labels import Labels

if TYPE_CHECKING:
    import keras

MODEL_ID = re.compile(rf"m-{RUN_ID.pattern}")  # a logged model's id
IMAGE_SHAPE = (32, 32, 3)
ANOTHER_STORE = "point at another store with --tracking-uri (cifar-exp predict, register) or tracking.uri= (evaluate)"
FORMS = (
    "an MLflow model URI (models:/<name>@best, models:/<name>/<version>, models:/<model id>, "
    "runs:/<run id>/report_cnn), a run id, a .h5 or .keras file, or an MLflow model folder"
)


@dataclass
class LoadedModel:
    """A Keras model with the names of its outputs, and where it came from."""

    model: "keras.Model"
    labels: Labels
    source: str  # the URI or file it was loaded from
    model_id: Optional[str] = None  # the MLflow logged model's id, where it is one

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities of uint8 images (N, 32, 32, 3), measured as its run measured its test accuracy (with
        flip test-time augmentation if the run used it), so evaluating on the same data gives the same figure."""
        from cifar_exp.inference import predict

        return np.asarray(predict(self.model, images, self.labels.tta_flip))


def load(reference: str, tracking_uri: str) -> LoadedModel:
    """Resolve ``reference`` (see the module's doc) against the store at ``tracking_uri`` and load it."""
    path = Path(reference).expanduser()
    if path.is_dir():
        if not (path / "MLmodel").exists():
            raise ModelError(f"{reference} is a folder without an MLmodel file, so not an MLflow model; give {FORMS}.")
        return _checked(_load_mlflow_folder(path, str(path)))
    if path.is_file():
        return _checked(_load_keras_file(path, str(path)))
    if path.suffix in (".h5", ".keras"):
        raise ModelError(f"{reference}: no such file (resolved to {path.resolve()}).")
    if MODEL_ID.fullmatch(reference) or (":/" not in reference and "@" in reference):
        reference = f"models:/{reference}"
    if not RUN_ID.fullmatch(reference) and ":/" not in reference:
        raise ModelError(f"{reference!r} is not a model reference: give {FORMS}.")
    if RUN_ID.fullmatch(reference) or reference.startswith(("models:/", "runs:/")):
        from cifar_exp.tracking import prepare_store

        prepare_store(tracking_uri, must_exist=True)  # a missing file or a silent server, said as such
    if RUN_ID.fullmatch(reference):
        return _checked(_load_run(reference, tracking_uri))
    return _checked(_load_uri(reference, tracking_uri))


def _load_keras_file(path: Path, source: str, model_id: Optional[str] = None) -> LoadedModel:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # h5py, zipfile and Keras' own errors all mean "not a Keras model file"
        reason = str(error).splitlines()[0].split(". ")[0] if str(error) else ""
        raise ModelError(
            f"{source} is not a Keras model file that this Keras can load ({type(error).__name__}: "
            f"{reason}); give {FORMS}."
        ) from error
    return LoadedModel(model, Labels.of_file(path) or Labels.generic(int(model.output_shape[-1])), source, model_id)


def _load_mlflow_folder(folder: Path, source: str) -> LoadedModel:
    import mlflow.keras
    from mlflow.models import Model

    description = Model.load(str(folder / "MLmodel"))
    if "keras" not in description.flavors:
        raise ModelError(
            f"{source} is an MLflow model of flavor(s) {', '.join(description.flavors)}, not Keras: "
            "not a model this harness trained."
        )
    try:
        model = mlflow.keras.load_model(str(folder), load_model_kwargs={"compile": False})
    except (OSError, ValueError) as error:
        raise ModelError(
            f"{source}: the MLflow model is there but its files are incomplete ({str(error).splitlines()[0]}); "
            "its weights were never stored, as for runs whose artifacts stayed on another machine. Use another "
            "model, or copy the run's artifacts into the store."
        ) from error
    metadata = description.metadata or {}
    labels = Labels.from_dict(metadata) if metadata else Labels.generic(int(model.output_shape[-1]))
    return LoadedModel(model, labels, source, description.model_id)


def _load_uri(uri: str, tracking_uri: str) -> LoadedModel:
    """A ``models:/`` or ``runs:/`` URI, resolved through a client of ``tracking_uri`` (MLflow 3.17 resolves
    registry URIs through the process-wide tracking URI otherwise); any other URI is downloaded as it is."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    scheme, _, rest = uri.partition(":/")
    try:
        if scheme == "runs":
            run_id, _, path = rest.strip("/").partition("/")
            if "/" not in path and not path.endswith((".h5", ".keras")):  # the run's logged model, by any name
                return _load_run(run_id, tracking_uri)
            location, model_id = client.get_run(run_id).info.artifact_uri + "/" + path, None
        elif scheme == "models":
            location, model_id = _registry_location(client, rest.strip("/"), uri)
        else:
            location, model_id = uri, None
        with tempfile.TemporaryDirectory(prefix="cifar_exp_model_") as scratch:  # the model loads into memory
            import mlflow.artifacts

            local = Path(
                mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=scratch, tracking_uri=tracking_uri)
            )
            if local.is_file():
                return _load_keras_file(local, uri, model_id)
            if not (local / "MLmodel").exists():
                raise ModelError(f"{uri} holds no MLflow model (no MLmodel file); give {FORMS}.")
            return _load_mlflow_folder(local, uri)
    except MlflowException as error:
        if server_gave_up(error):  # the store failed, not the name
            raise ModelError(
                f"{uri}: the store {tracking_uri} failed while the model was being read ({briefly(error)[:300]}); "
                "the same command reads it again once the store answers."
            ) from error
        raise ModelError(
            f"{uri}: not found in the store {tracking_uri} ({error.message.splitlines()[0]}). "
            "Registered models and their aliases are listed in the MLflow UI's Models tab; "
            f"{ANOTHER_STORE}."
        ) from error
    except Exception as error:  # another scheme's client (boto3, GCS, HTTP): credentials, network, a missing object
        if isinstance(error, ModelError) or scheme in ("runs", "models"):
            raise
        raise ModelError(
            f"{uri} could not be downloaded ({briefly(error)[:300]}); check the address and "
            f"the credentials its storage needs, or give {FORMS}."
        ) from error


def _registry_location(client: Any, path: str, uri: str) -> tuple[str, Optional[str]]:
    """Where the model of ``models:/<path>`` is stored, and its logged model id: path is a logged model id,
    ``<name>@<alias>`` or ``<name>/<version>``."""
    if MODEL_ID.fullmatch(path):
        return client.get_logged_model(path).artifact_location, path
    if "@" in path:
        name, alias = path.rsplit("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    elif "/" in path and path.rsplit("/", 1)[1].isdigit():
        version = client.get_model_version(*path.rsplit("/", 1))
    else:
        raise ModelError(
            f"{uri}: give models:/<name>@<alias>, models:/<name>/<version> or models:/<model id> (a model id is m- "
            "and 32 hexadecimal digits, as the run page's Logged models list it)."
        )
    return client.get_model_version_download_uri(version.name, version.version), version.model_id


def _load_run(run_id: str, tracking_uri: str) -> LoadedModel:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from cifar_exp.tracking.registry import find_run, trained_model_id

    client = MlflowClient(tracking_uri)
    run = find_run(client, run_id, ANOTHER_STORE)
    model_id = trained_model_id(run)
    if model_id is not None:
        return _load_uri(f"models:/{model_id}", tracking_uri)
    with tempfile.TemporaryDirectory(prefix="cifar_exp_model_") as scratch:
        try:
            h5 = client.download_artifacts(run_id, "model/model.h5", scratch)
        except (MlflowException, OSError) as error:
            raise ModelError(
                f"run {run_id} ({run.info.run_name}, {run.info.status}) logged no model: neither an "
                "MLflow Model nor model/model.h5 (it failed or was killed before its end?)."
            ) from error
        return _load_keras_file(Path(h5), f"runs:/{run_id}/model/model.h5")


def _checked(loaded: LoadedModel) -> LoadedModel:
    """The model must take 32x32 RGB images and give one probability per class it has a name for."""
    model = loaded.model
    if tuple(model.input_shape[1:]) != IMAGE_SHAPE:
        raise ModelError(
            f"{loaded.source} takes inputs of shape {tuple(model.input_shape)}, not 32x32 RGB images "
            "(None, 32, 32, 3): not a CIFAR model of this harness."
        )
    classes = int(model.output_shape[-1])
    if classes != len(loaded.labels.class_names):
        raise ModelError(
            f"{loaded.source} gives {classes} outputs but its labels name "
            f"{len(loaded.labels.class_names)} classes: the labels belong to another model."
        )
    return loaded
