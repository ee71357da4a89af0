"""Test-set predictions, optionally with flip test-time augmentation: the mean of the class probabilities of
each image and of its mirror image (``trainer.tta_flip``), which the random flips of training make as likely."""

from __future__ import annotations

import keras
import numpy as np


def predict(model: keras.Model, images: np.ndarray, tta_flip: bool, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of (N, H, W, C) images, averaged with those of the flipped images if ``tta_flip``."""
    probabilities = model.predict(images, batch_size=batch_size, verbose=0)
    if tta_flip:
        probabilities = (probabilities + model.predict(images[:, :, ::-1], batch_size=batch_size, verbose=0)) / 2
    return probabilities
