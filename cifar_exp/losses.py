"""The training loss and the label encoding it needs.

Without label smoothing the loss is today's ``sparse_categorical_crossentropy`` on integer labels. Keras'
sparse cross-entropy has no ``label_smoothing``, so with smoothing the labels become one-hot and the loss is
Keras' own ``CategoricalCrossentropy(label_smoothing=...)``: built-in, so a saved ``.h5`` still loads without
this package. The ``accuracy`` metric follows the label encoding by itself.
"""

from __future__ import annotations

import keras
import numpy as np
from omegaconf import DictConfig


def make_loss(cfg: DictConfig) -> str | keras.losses.Loss:
    """The loss of the ``loss`` config node."""
    if cfg.label_smoothing == 0:
        return "sparse_categorical_crossentropy"
    return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)


def encode_labels(cfg: DictConfig, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Labels as :func:`make_loss`'s loss takes them: integers, or one-hot rows with label smoothing."""
    if cfg.label_smoothing == 0:
        return labels
    return np.eye(num_classes, dtype=np.uint8)[labels]
