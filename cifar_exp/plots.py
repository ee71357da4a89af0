"""Figures from data computed elsewhere (seaborn / matplotlib); nothing is computed here."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402


def confusion_matrix(counts: np.ndarray, labels: Sequence[str], title: str, cmap: str = "viridis") -> Figure:
    """A heatmap of confusion counts (rows: true class, columns: predicted), as the report showed it."""
    size = max(6.0, 0.18 * len(labels) + 3)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(
        counts, cmap=cmap, square=True, xticklabels=labels, yticklabels=labels, ax=axes, cbar_kws={"label": "images"}
    )
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


Curve = tuple[Sequence[float], Sequence[float]]  # (epochs, values)


def curves_beside_report(
    curves: Mapping[str, Mapping[str, Curve]],
    report: Mapping[str, Curve],
    title: str,
    report_label: str = "2017 report (printed epochs)",
) -> Figure:
    """One panel per metric (e.g. val_accuracy, val_loss): a line per run against epoch, and the report's own
    printed epochs of that metric as points."""
    metrics = list(curves)
    figure, panels = plt.subplots(1, len(metrics), figsize=(7 * len(metrics), 5), squeeze=False)
    for axes, metric in zip(panels[0], metrics):
        for label, (epochs, values) in curves[metric].items():
            axes.plot(epochs, values, label=label, linewidth=1, marker="o" if len(values) < 30 else None, markersize=3)
        epochs, values = report.get(metric, ((), ()))
        if len(epochs):
            axes.scatter(epochs, values, color="black", marker="x", s=20, zorder=3, label=report_label)
        axes.set(xlabel="epoch", ylabel=metric, title=metric)
    panels[0][-1].legend(fontsize=7, loc="best")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


VERDICT_COLOURS = {"reproduced": "tab:green", "higher": "tab:blue", "lower": "tab:red"}


def verdict_chart(
    labels: Sequence[str],
    means: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    report: Sequence[float],
    verdicts: Sequence[str],
    title: str,
) -> Figure:
    """One row per arm: the measured mean (as a percentage) with its interval as an error bar, coloured by its
    verdict, and the report's figure as a black diamond. NaN bounds draw no bar, a NaN figure no diamond."""
    means_pct, lows_pct, highs_pct, report_pct = (
        100 * np.asarray(v, dtype=float) for v in (means, lows, highs, report)
    )
    rows = np.arange(len(labels))[::-1]
    figure, axes = plt.subplots(figsize=(11, 1.8 + 0.45 * len(labels)))
    for row, mean, low, high, verdict in zip(rows, means_pct, lows_pct, highs_pct, verdicts):
        colour = VERDICT_COLOURS.get(verdict.split()[0], "tab:gray")
        error = None if np.isnan(low) else [[mean - low], [high - mean]]
        axes.errorbar(mean, row, xerr=error, fmt="o", color=colour, capsize=4)
    axes.scatter(report_pct, rows, marker="D", color="black", s=30, zorder=3)
    legend = [Line2D([], [], marker="D", linestyle="", color="black", label="2017 report")]
    legend += [
        Line2D([], [], marker="o", linestyle="", color=colour, label=f"measured: {verdict}")
        for verdict, colour in {**VERDICT_COLOURS, "no figure or 1 seed": "tab:gray"}.items()
    ]
    axes.set_yticks(rows, labels, fontsize=8)
    axes.set(xlabel="test accuracy (%): mean over seeds, 95% interval", title=title)
    axes.grid(axis="x", alpha=0.3)
    axes.legend(handles=legend, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.tight_layout()
    return figure


def close(figure: Figure) -> None:
    """Free a figure once logged: pyplot keeps every open figure alive, and a sweep makes many."""
    plt.close(figure)
