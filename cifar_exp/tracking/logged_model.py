"""A run's trained model as an MLflow Model (Keras flavor, named after its architecture: ``report_cnn``) with a
signature, an input example, pinned pip requirements and its labels, logged as the run's output: the run page
lists it under "Logged models", and ``mlflow.pyfunc.load_model``, ``mlflow.keras.load_model`` and ``mlflow models
serve`` take it.

Logged through the client with the run id, like everything else here, rather than ``mlflow.keras.log_model``,
which reads the process-wide tracking URI and active run. The requirements are pinned from what is installed
instead of being inferred, which would load the model again in a subprocess (seconds per run).
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

import numpy as np

from cifar_exp.tracking.run import Run

if TYPE_CHECKING:
    import keras
    from mlflow.models import ModelSignature

IMAGE_SHAPE = (32, 32, 3)
BACKEND_DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",), "torch": ("torch",)}


def signature(num_classes: int) -> "ModelSignature":
    """uint8 RGB images (N, 32, 32, 3) with values 0-255 in (the model rescales them), class probabilities out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, *IMAGE_SHAPE), "image")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, num_classes), "probabilities")]),
    )


def _pin(*distributions: str) -> Optional[str]:
    """``name==version`` of the first of these distributions that is installed."""
    for name in distributions:
        try:
            return f"{name}=={importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def pip_requirements(backend: str) -> list[str]:
    """What loading the model needs, pinned to the versions that trained it: MLflow, Keras, its backend, NumPy."""
    pins = [_pin("mlflow"), _pin("keras"), _pin(*BACKEND_DISTRIBUTIONS.get(backend, (backend,))), _pin("numpy")]
    return [pin for pin in pins if pin]


def log_keras_model(
    run: Run, model: "keras.Model", labels: Mapping[str, Any], example: np.ndarray, step: int
) -> Optional[str]:
    """Log ``model`` as the run's MLflow Model at ``step`` (epochs run); ``labels`` (class and superclass names,
    the fine-to-coarse map, the label mode) go into its metadata. Returns the logged model's id."""
    if not run.enabled:
        return None
    import keras
    import mlflow.keras
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    client = run.client
    source = client.get_run(run.run_id)
    _drop_earlier_attempts(client, source.info.experiment_id, run.run_id)
    # Named after the architecture (report_cnn), so runs:/<run id>/report_cnn loads it. Not "model": MLflow would
    # then merge it into the run's own model/ folder (the .h5) whenever that folder is listed or downloaded.
    logged = client.create_logged_model(
        source.info.experiment_id,
        name=model.name,
        source_run_id=run.run_id,
        params=dict(source.data.params),
        model_type="keras",
    )
    try:
        client.log_outputs(run.run_id, [LoggedModelOutput(logged.model_id, step=step)])
        with tempfile.TemporaryDirectory(prefix="cifar_exp_mlmodel_") as scratch:
            path = Path(scratch) / "mlflow_model"
            path.mkdir()  # MLflow 3.17's keras.save_model writes the input example before creating the folder
            description = Model(
                artifact_path=logged.artifact_location,
                model_uuid=logged.model_id,
                run_id=run.run_id,
                model_id=logged.model_id,
            )
            mlflow.keras.save_model(
                model,
                str(path),
                mlflow_model=description,
                signature=signature(int(model.output_shape[-1])),
                input_example=example,
                pip_requirements=pip_requirements(keras.backend.backend()),
                metadata=dict(labels),
            )
            client.log_model_artifacts(logged.model_id, str(path))
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return logged.model_id


def _drop_earlier_attempts(client: Any, experiment_id: str, run_id: str) -> None:
    """A run stopped or killed while it logged its model, then resumed, logs it again: the earlier attempt's
    logged model (READY, or PENDING for ever after a kill -9 or a full disk) is deleted, so the run has one
    model and ``runs:/<run id>/<name>`` one meaning (``mlflow gc`` frees the files of deleted models)."""
    earlier = client.search_logged_models([experiment_id], filter_string=f"source_run_id = '{run_id}'")
    for model in earlier:
        client.delete_logged_model(model.model_id)
