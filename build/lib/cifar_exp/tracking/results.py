"""What a run records once at its start (params, config, model summary) and once at its end (test metrics,
figures, tables, the model, TensorBoard logs)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import pandas as pd

from cifar_exp.tracking.run import TAG_NOTE, Run

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure


def flatten(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Nested config -> {"optimizer.lr": 1e-4, ...}."""
    return pd.json_normalize(dict(mapping), sep=".").to_dict(orient="records")[0] if mapping else {}


def describe_run(run: Run, params: Mapping[str, Any], config_yaml: str, overrides_yaml: str,
                 model_summary: str) -> None:
    """Params, the resolved config, the overrides and the model summary: logged once, when a run starts."""
    run.log_params(params)
    run.log_text(config_yaml, "config/config.yaml")
    run.log_text(overrides_yaml, "config/overrides.yaml")
    run.log_text(model_summary, "model_summary.txt")


def record_results(run: Run, metrics: Mapping[str, float], step: int, note: str, figures: Mapping[str, "Figure"],
                   tables: Mapping[str, pd.DataFrame], model: "keras.Model", tensorboard_dir: Path,
                   skip_logged: bool = False) -> None:
    """The end of a run: test metrics (at ``step``, the number of epochs run), its description, figures,
    tables as CSV, the ``.h5`` model and the TensorBoard logs. ``skip_logged`` (a resumed run) leaves out
    metrics already logged at ``step`` by the process that was stopped while recording."""
    import matplotlib.pyplot as plt

    if skip_logged:
        metrics = {k: v for k, v in metrics.items() if step not in run.logged_steps(k)}
    run.log_metrics(metrics, step=step)
    run.set_tags({TAG_NOTE: note})
    for artifact_file, figure in figures.items():
        run.log_figure(figure, artifact_file)
        plt.close(figure)
    for artifact_file, table in tables.items():
        run.log_text(table.to_csv(), artifact_file)
    if not run.enabled:
        return
    with tempfile.TemporaryDirectory(prefix="cifar_exp_model_") as scratch:
        path = Path(scratch) / "model.h5"
        model.save(path)
        run.log_artifact(path, "model")
    if tensorboard_dir.exists():
        run.log_artifacts(tensorboard_dir, "tensorboard")
