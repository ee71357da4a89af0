"""The figures and tables of a test evaluation, logged alike by a training run and by ``cifar-exp evaluate``:
the confusion matrices (colour, grayscale, superclass), the learning curves, and their numbers as CSV."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import pandas as pd

from cifar_exp import plots
from cifar_exp.evaluate import Evaluation

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def figures(
    name: str,
    result: Evaluation,
    class_names: list[str],
    coarse_names: list[str],
    history: Optional[dict[str, list[float]]] = None,
) -> dict[str, "Figure"]:
    """Artifact path -> figure; the learning curves only where there is a training ``history``."""
    title = f"{name}: confusion matrix (test)"
    found = {
        "plots/confusion_matrix.png": plots.confusion_matrix(result.confusion, class_names, title),
        "plots/confusion_matrix_grayscale.png": plots.confusion_matrix(
            result.confusion, class_names, title, cmap="Greys"
        ),
        "plots/superclass_confusion_matrix.png": plots.confusion_matrix(
            result.superclass_confusion, coarse_names, f"{name}: superclass confusion matrix (test)"
        ),
    }
    if history is not None:
        found["plots/learning_curves.png"] = plots.learning_curves(history, name)
    return found


def tables(result: Evaluation, class_names: list[str], coarse_names: list[str]) -> dict[str, pd.DataFrame]:
    """Artifact path -> table: both confusion matrices (rows: true labels) and the per-class report."""

    def matrix(counts, labels: list[str]) -> pd.DataFrame:
        return pd.DataFrame(counts, index=pd.Index(labels, name="true"), columns=labels)

    return {
        "metrics/confusion_matrix.csv": matrix(result.confusion, class_names),
        "metrics/superclass_confusion_matrix.csv": matrix(result.superclass_confusion, coarse_names),
        "metrics/per_class_report.csv": result.per_class.round(4),
    }
