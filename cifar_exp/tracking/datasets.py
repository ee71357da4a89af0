"""A run's data as MLflow dataset inputs (train, validation, test), so the run page's Datasets panel lists them
and the runs table filters by them. Each split's digest is the sha256 fingerprint of its own images and labels
(the recipe of the run's ``dataset_fingerprint`` tag), cut to the 36 characters MLflow's store keeps."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

import numpy as np

from cifar_exp.tracking.run import Run

if TYPE_CHECKING:
    from mlflow.data.numpy_dataset import NumpyDataset

KERAS_SOURCE = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"  # what keras.datasets.cifar100 downloads
CONTEXT_TAG = "mlflow.data.context"  # MLflow's tag for a dataset's role in a run (shown beside its name)
DIGEST_LENGTH = 36  # MLflow's limit on a dataset digest


def split_digest(x: np.ndarray, y: np.ndarray) -> str:
    """The fingerprint of one split's images and labels, cut to MLflow's digest length."""
    from cifar_exp.data import fingerprint

    return fingerprint(x, y)[:DIGEST_LENGTH]


def data_source(source: str, path: Optional[str]) -> str:
    """Where the images were read: the local copy's absolute path, or the URL keras.datasets downloads."""
    return KERAS_SOURCE if source == "keras" or path is None else str(Path(path).resolve())


def dataset_inputs(
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]], source: str, label_mode: str
) -> dict[str, "NumpyDataset"]:
    """One MLflow dataset per split (``{"train": (x, y), ...}``), named ``cifar100-<split>`` (``cifar100-coarse-``
    for superclass labels), with its digest, its source and MLflow's tensor schema and shape profile."""
    from mlflow.data.numpy_dataset import from_numpy

    prefix = "cifar100" if label_mode == "fine" else "cifar100-coarse"
    with warnings.catch_warnings():  # a local path matches MLflow's two local sources ("" and file:), which agree
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        return {
            split: from_numpy(x, source=source, targets=y, name=f"{prefix}-{split}", digest=split_digest(x, y))
            for split, (x, y) in splits.items()
        }


def log_dataset_inputs(run: Run, datasets: Mapping[str, "NumpyDataset"]) -> None:
    """Log the datasets as the run's inputs, each tagged with its context (train, validation, test)."""
    if not run.enabled:
        return
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    inputs = [DatasetInput(Dataset(**d.to_dict()), [InputTag(CONTEXT_TAG, context)]) for context, d in datasets.items()]
    for attempt in range(3):
        try:
            run.client.log_inputs(run.run_id, datasets=inputs)
            return
        except MlflowException as error:
            # MLflow looks a dataset up, then inserts it: two jobs logging the same new dataset at once collide on
            # its unique key (seen with two sweeps started together on a fresh store); once it exists, both find it.
            if attempt == 2 or "UNIQUE constraint failed" not in str(error) and "IntegrityError" not in str(error):
                raise
            time.sleep(0.2 * (attempt + 1))
