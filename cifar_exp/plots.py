"""Figures from data computed elsewhere (seaborn / matplotlib); nothing is computed here."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def confusion_matrix(counts: np.ndarray, labels: Sequence[str], title: str, cmap: str = "viridis") -> Figure:
    """A heatmap of confusion counts (rows: true class, columns: predicted), as the report showed it."""
    size = max(6.0, 0.18 * len(labels) + 3)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(counts, cmap=cmap, square=True, xticklabels=labels, yticklabels=labels, ax=axes,
                cbar_kws={"label": "images"})
    fontsize = 5 if len(labels) > 30 else 8
    axes.tick_params(labelsize=fontsize)
    axes.set(xlabel="predicted class", ylabel="true class", title=title)
    figure.tight_layout()
    return figure


def learning_curves(history: Mapping[str, Sequence[float]], title: str) -> Figure:
    """Loss and accuracy per epoch, training against validation (what the report read off TensorBoard)."""
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in history:
                epochs = np.arange(1, len(history[key]) + 1)
                sns.lineplot(x=epochs, y=history[key], ax=axes, label=label, marker="o" if len(epochs) < 30 else None)
        axes.set(xlabel="epoch", ylabel=metric, title=metric)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def overlay_curves(curves: Mapping[str, Sequence[float]], metric: str, title: str) -> Figure:
    """One line per run of ``metric`` against epoch, to compare the runs of a sweep."""
    figure, axes = plt.subplots(figsize=(8, 5))
    for label, values in curves.items():
        sns.lineplot(x=np.arange(1, len(values) + 1), y=values, ax=axes, label=label)
    axes.set(xlabel="epoch", ylabel=metric, title=title)
    figure.tight_layout()
    return figure


def close(figure: Figure) -> None:
    plt.close(figure)
