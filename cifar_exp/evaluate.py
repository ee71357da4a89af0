"""Test-set numbers as data: metrics, confusion matrices (fine and superclass), per-class report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, top_k_accuracy_score

EPSILON = 1e-7  # Keras' clip for cross-entropy, so test_loss matches model.evaluate


def accuracy_summary(metrics: Mapping[str, float]) -> str:
    """A run's result as people read it: "test accuracy 56.02% (top-5 82.10%)", the top-5 where it was measured."""
    said = f"test accuracy {metrics['test_accuracy']:.2%}"
    return f"{said} (top-5 {metrics['test_top5_accuracy']:.2%})" if "test_top5_accuracy" in metrics else said


@dataclass
class Evaluation:
    """The test-set numbers of one model: what a run logs as metrics, figures and tables."""

    metrics: dict[str, float]
    confusion: np.ndarray  # (classes, classes) counts, rows = true labels
    superclass_confusion: np.ndarray  # (20, 20) counts
    per_class: pd.DataFrame  # precision / recall / f1-score / support per class


def evaluate(
    probabilities: np.ndarray,
    y_true: np.ndarray,
    class_names: list[str],
    coarse_names: list[str],
    fine_to_coarse: np.ndarray,
    label_mode: str,
) -> Evaluation:
    """Score predicted class probabilities against the true labels.

    ``test_superclass_accuracy`` maps fine predictions and labels to the 20 coarse classes (for a
    coarse-label run it equals ``test_accuracy``).
    """
    labels = np.arange(len(class_names))
    y_pred = probabilities.argmax(axis=1)
    picked = np.clip(probabilities[np.arange(len(y_true)), y_true], EPSILON, 1.0)
    to_coarse = fine_to_coarse if label_mode == "fine" else np.arange(len(coarse_names))
    coarse_true, coarse_pred = to_coarse[y_true], to_coarse[y_pred]
    metrics = {
        "test_loss": float(-np.log(picked).mean()),
        "test_accuracy": float(accuracy_score(y_true, y_pred)),
        "test_top5_accuracy": float(top_k_accuracy_score(y_true, probabilities, k=5, labels=labels)),
        "test_superclass_accuracy": float(accuracy_score(coarse_true, coarse_pred)),
    }
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=class_names, output_dict=True, zero_division=0
    )
    per_class = pd.DataFrame({name: report[name] for name in class_names}).T
    per_class.index.name = "class"
    return Evaluation(
        metrics=metrics,
        confusion=confusion_matrix(y_true, y_pred, labels=labels),
        superclass_confusion=confusion_matrix(coarse_true, coarse_pred, labels=np.arange(len(coarse_names))),
        per_class=per_class,
    )
