"""Figures from given numbers: the confusion matrix in colour and grayscale, learning curves, the verdict chart."""

from __future__ import annotations

import numpy as np

from cifar_exp import plots


def test_confusion_matrix_draws_every_class_in_the_colour_map():
    counts = np.arange(9).reshape(3, 3)
    figure = plots.confusion_matrix(counts, ["a", "b", "c"], "t", cmap="Greys")
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["a", "b", "c"]
    assert axes.collections[0].get_cmap().name == "Greys"
    np.testing.assert_array_equal(np.asarray(axes.collections[0].get_array()).reshape(3, 3), counts)
    plots.close(figure)


def test_learning_curves_plot_train_and_validation():
    figure = plots.learning_curves({"loss": [3, 2], "val_loss": [3.5, 2.5], "accuracy": [0.1, 0.2]}, "t")
    loss_axes, accuracy_axes = figure.axes[:2]
    assert [line.get_label() for line in loss_axes.get_lines()] == ["train", "validation"]
    assert list(loss_axes.get_lines()[1].get_ydata()) == [3.5, 2.5]
    assert len(accuracy_axes.get_lines()) == 1
    plots.close(figure)


def test_verdict_chart_marks_the_reports_figure():
    figure = plots.verdict_chart(
        ["x", "y"],
        [0.5, 0.4],
        [0.45, np.nan],
        [0.55, np.nan],
        [0.52, np.nan],
        ["reproduced", "1 seed: no interval"],
        "t",
    )
    offsets = figure.axes[0].collections[-1].get_offsets()
    assert 52.0 in np.asarray(offsets)[:, 0]
    plots.close(figure)
