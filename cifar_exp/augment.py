"""The report's real-time augmentation, on uint8 batches, in NumPy (so it runs under every Keras backend).

``shift_flip`` reproduces Keras 2's ``ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.1,
horizontal_flip=True)``: each image, independently and anew every epoch, is shifted by a whole number of
pixels in each axis (up to ``shift`` of its side, 3 px for 10% of 32) with nearest-pixel fill, and
flipped left-right with probability 1/2. A shift is an integer crop of the edge-padded image, so it
costs one gather and no interpolation.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from omegaconf import DictConfig


def max_shift_pixels(side: int, shift: float) -> int:
    """The largest whole-pixel shift for a fractional ``shift`` of an image ``side`` (0.1 of 32 -> 3)."""
    return int(np.floor(shift * side + 1e-9))


def shift_flip(images: np.ndarray, rng: np.random.Generator, shift: float = 0.1, flip: bool = True) -> np.ndarray:
    """Randomly shift (nearest fill) and horizontally flip every image of a (B, H, W, C) batch."""
    batch, height, width, _ = images.shape
    pad_y, pad_x = max_shift_pixels(height, shift), max_shift_pixels(width, shift)
    padded = np.pad(images, ((0, 0), (pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="edge")
    rows = rng.integers(0, 2 * pad_y + 1, size=batch)[:, None] + np.arange(height)
    cols = rng.integers(0, 2 * pad_x + 1, size=batch)[:, None] + np.arange(width)
    if flip:
        flipped = rng.random(batch) < 0.5
        cols[flipped] = cols[flipped, ::-1]
    return padded[np.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]]


AUGMENTATIONS: dict[str, Callable[..., np.ndarray]] = {"shift_flip": shift_flip}


def make_augmentation(cfg: DictConfig) -> Optional[Callable[[np.ndarray, np.random.Generator], np.ndarray]]:
    """The batch transform of an ``augmentation`` config group (None for ``none``); a new augmentation is one
    function in :data:`AUGMENTATIONS` plus one YAML file in ``conf/augmentation/``."""
    if cfg.name == "none":
        return None
    transform = AUGMENTATIONS[cfg.name]
    return lambda images, rng: transform(images, rng, shift=cfg.shift, flip=cfg.flip)
