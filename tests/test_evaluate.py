from __future__ import annotations

import numpy as np
import pytest

from cifar_exp.evaluate import evaluate

FINE_TO_COARSE = np.arange(100) % 20


def _probabilities(predicted: list[int], classes: int = 100) -> np.ndarray:
    p = np.full((len(predicted), classes), 0.1 / (classes - 1))
    p[np.arange(len(predicted)), predicted] = 0.9
    return p


def test_metrics_on_known_predictions():
    y_true = np.array([0, 1, 2, 3])
    predicted = [0, 1, 22, 50]  # 2 right; 22 is in 2's superclass (22 % 20 == 2); 50 is not 3's
    names = [f"c{i}" for i in range(100)]
    result = evaluate(_probabilities(predicted), y_true, names, [f"s{i}" for i in range(20)], FINE_TO_COARSE, "fine")
    assert result.metrics["test_accuracy"] == 0.5
    assert result.metrics["test_superclass_accuracy"] == 0.75
    assert result.metrics["test_top5_accuracy"] == 0.5
    expected_loss = -(2 * np.log(0.9) + 2 * np.log(0.1 / 99)) / 4
    assert result.metrics["test_loss"] == pytest.approx(expected_loss)
    assert result.confusion.shape == (100, 100) and result.confusion.sum() == 4
    assert result.confusion[2, 22] == 1
    assert result.superclass_confusion.shape == (20, 20) and result.superclass_confusion[2, 2] == 1
    assert result.per_class.loc["c0", "precision"] == 1.0 and result.per_class.loc["c2", "recall"] == 0.0


def test_coarse_mode_superclass_accuracy_is_accuracy():
    y_true = np.array([0, 1, 2])
    names = [f"s{i}" for i in range(20)]
    result = evaluate(_probabilities([0, 1, 5], 20), y_true, names, names, FINE_TO_COARSE, "coarse")
    assert result.metrics["test_superclass_accuracy"] == result.metrics["test_accuracy"] == pytest.approx(2 / 3)
