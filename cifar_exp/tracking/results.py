"""What a run records once at its start (params, config, model summary) and once at its end (the MLflow Model,
test metrics, figures, tables, the ``.h5``, TensorBoard logs)."""

from __future__ import annotations

import logging
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional

import numpy as np
import pandas as pd

from cifar_exp.tracking.logged_model import log_keras_model
from cifar_exp.tracking.run import TAG_NOTE, Run

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure
    from mlflow.data.numpy_dataset import NumpyDataset

    from cifar_exp.labels import Labels


def flatten(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Nested config -> {"optimizer.lr": 1e-4, ...}."""
    return pd.json_normalize(dict(mapping), sep=".").to_dict(orient="records")[0] if mapping else {}


def describe_run(
    run: Run, params: Mapping[str, Any], config_yaml: str, overrides_yaml: str, model_summary: str
) -> None:
    """Params, the resolved config, the overrides and the model summary: logged once, when a run starts."""
    run.log_params(params)
    run.log_text(config_yaml, "config/config.yaml")
    run.log_text(overrides_yaml, "config/overrides.yaml")
    run.log_text(model_summary, "model_summary.txt")


def record_results(
    run: Run,
    metrics: Mapping[str, float],
    step: int,
    note: str,
    figures: Mapping[str, "Figure"],
    tables: Mapping[str, pd.DataFrame],
    model: "keras.Model",
    tensorboard_dir: Path,
    labels: "Labels",
    test_set: "NumpyDataset",
    skip_logged: bool = False,
) -> None:
    """The end of a run: the MLflow Model (its input example: the first two test images), the test metrics (at
    ``step``, the number of epochs run, linked to that model and the test set), its description, figures, tables
    as CSV, the ``.h5`` model (its labels inside) and the TensorBoard logs. ``skip_logged`` (a resumed run) leaves
    out metrics already logged at ``step`` by the process that was stopped while recording."""
    if skip_logged:
        metrics = {k: v for k, v in metrics.items() if step not in run.logged_steps(k)}
    model_id = log_keras_model(run, model, labels.to_dict(), np.asarray(test_set.features)[:2], step)
    log_linked_metrics(run, metrics, step, model_id, test_set)
    run.set_tags({TAG_NOTE: note})
    log_figures_and_tables(run, figures, tables)
    if not run.enabled:
        return
    with tempfile.TemporaryDirectory(prefix="cifar_exp_model_") as scratch:
        path = Path(scratch) / "model.h5"
        with _h5_on_purpose():
            model.save(path)
        labels.write_h5(path)
        run.log_artifact(path, "model")
    if tensorboard_dir.exists():
        run.log_artifacts(tensorboard_dir, "tensorboard")


def _not_the_h5_warning(record: logging.LogRecord) -> bool:
    return "HDF5 file via `model.save()`" not in record.getMessage()


@contextmanager
def _h5_on_purpose() -> Iterator[None]:
    """Keras warns on every ``.h5`` save that the format is legacy; this harness saves one on purpose (the report's
    format, beside the MLflow model), so that warning is left out of the run's output."""
    absl = logging.getLogger("absl")
    absl.addFilter(_not_the_h5_warning)
    try:
        yield
    finally:
        absl.removeFilter(_not_the_h5_warning)


def log_figures_and_tables(run: Run, figures: Mapping[str, "Figure"], tables: Mapping[str, pd.DataFrame]) -> None:
    """Figures as PNG and tables as CSV, at their artifact paths; the figures are closed, logged or not. A table's
    index is written when it names its rows (class names), not when it only numbers them."""
    import matplotlib.pyplot as plt

    try:
        for artifact_file, figure in figures.items():
            run.log_figure(figure, artifact_file)
    finally:
        for figure in figures.values():
            plt.close(figure)
    for artifact_file, table in tables.items():
        run.log_text(table.to_csv(index=not isinstance(table.index, pd.RangeIndex)), artifact_file)


def log_linked_metrics(
    run: Run, metrics: Mapping[str, float], step: int, model_id: Optional[str], dataset: "NumpyDataset"
) -> None:
    """Metrics measured on ``dataset`` by the logged model ``model_id``: MLflow shows them on the model's page too,
    beside the dataset's name and digest."""
    if not run.enabled:
        return
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    run.client.log_batch(
        run.run_id,
        metrics=[
            Metric(k, float(v), now, step, dataset_name=dataset.name, dataset_digest=dataset.digest, model_id=model_id)
            for k, v in metrics.items()
        ],
    )
