"""The report's real-time augmentation, on uint8 batches, in NumPy (so it runs under every Keras backend).

The report used Keras 2's ``ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.1,
horizontal_flip=True)``. For each image, anew every epoch, that generator draws a continuous shift uniform
in +-10% of the side per axis (+-3.2 px of 32), resamples the image with bilinear interpolation and
nearest-pixel fill (``apply_affine_transform``: ``scipy.ndimage.affine_transform``, ``order=1``,
``fill_mode='nearest'``), then flips it left-right with probability 1/2. Two augmentations here:

- ``keras2``: that transform, vectorised over the batch (the exact variant; the interpolated values are
  rounded to the nearest uint8, at most half a grey level from Keras 2's float images).
- ``shift_flip``: an approximation that draws whole-pixel shifts only (up to ``floor(0.1 * 32) = 3`` px,
  seven values per axis) and needs no interpolation: one gather from the edge-padded batch.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from omegaconf import DictConfig

Augmentation = Callable[..., np.ndarray]


def max_shift_pixels(side: int, shift: float) -> int:
    """The largest whole-pixel shift for a fractional ``shift`` of an image ``side`` (0.1 of 32 -> 3)."""
    return int(np.floor(shift * side + 1e-9))


def shift_flip(images: np.ndarray, rng: np.random.Generator, shift: float = 0.1, flip: bool = True) -> np.ndarray:
    """Randomly shift by whole pixels (nearest fill) and horizontally flip every image of a (B, H, W, C) batch.

    An approximation of Keras 2's generator, not a reproduction: its shifts are continuous (see ``keras2``).
    """
    batch, height, width, _ = images.shape
    pad_y, pad_x = max_shift_pixels(height, shift), max_shift_pixels(width, shift)
    padded = np.pad(images, ((0, 0), (pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="edge")
    rows = np.asarray(rng.integers(0, 2 * pad_y + 1, size=batch))[:, None] + np.arange(height)
    cols = np.asarray(rng.integers(0, 2 * pad_x + 1, size=batch))[:, None] + np.arange(width)
    if flip:
        flipped = rng.random(batch) < 0.5
        cols[flipped] = cols[flipped, ::-1]
    return padded[np.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]]


def keras2_draws(
    batch: int, height: int, width: int, rng: np.random.Generator, shift: float = 0.1, flip: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras 2's random draws per image: row and column shifts uniform in +-``shift`` of the side (pixels,
    continuous) and whether to flip (probability 1/2; never when ``flip`` is false)."""
    dy = rng.uniform(-shift, shift, size=batch) * height
    dx = rng.uniform(-shift, shift, size=batch) * width
    flipped = rng.random(batch) < 0.5 if flip else np.zeros(batch, dtype=bool)
    return dy, dx, flipped


def _linear_taps(shifts: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For output pixel i sampling input coordinate i + shift: the two input indices (edge-clamped, which is
    nearest fill) and the weight of the second, per image: three (B, side) arrays."""
    coords = np.arange(side)[None, :] + shifts[:, None]
    low = np.floor(coords)
    weight = (coords - low).astype(np.float32)
    low = low.astype(np.int64)
    return np.clip(low, 0, side - 1), np.clip(low + 1, 0, side - 1), weight


def translate(images: np.ndarray, dy: np.ndarray, dx: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """Resample each image of a (B, H, W, C) batch at (row + dy, col + dx), bilinear with nearest fill,
    then flip the ``flipped`` ones left-right: ``scipy.ndimage.affine_transform(order=1, mode='nearest')``
    with offset (dy, dx), as Keras 2 applied it. uint8 in, uint8 out (rounded to nearest); else float32."""
    _, height, width, _ = images.shape
    r0, r1, wy = _linear_taps(np.asarray(dy, dtype=np.float64), height)
    c0, c1, wx = _linear_taps(np.asarray(dx, dtype=np.float64), width)
    flipped = np.asarray(flipped, dtype=bool)
    c0[flipped], c1[flipped], wx[flipped] = c0[flipped, ::-1], c1[flipped, ::-1], wx[flipped, ::-1]
    b = np.arange(len(images))[:, None, None]
    pixels = images.astype(np.float32)
    wy = wy[:, :, None, None]
    rows = (1 - wy) * pixels[b[:, :, 0], r0] + wy * pixels[b[:, :, 0], r1]  # (B, H, W, C), along rows
    wx = wx[:, None, :, None]
    h = np.arange(height)[None, :, None]
    out = (1 - wx) * rows[b, h, c0[:, None, :]] + wx * rows[b, h, c1[:, None, :]]  # then along columns
    return np.rint(out).astype(np.uint8) if images.dtype == np.uint8 else out


def keras2_shift_flip(
    images: np.ndarray, rng: np.random.Generator, shift: float = 0.1, flip: bool = True
) -> np.ndarray:
    """Keras 2's ``ImageDataGenerator`` shift-and-flip: continuous shifts, bilinear, nearest fill, flips."""
    batch, height, width, _ = images.shape
    return translate(images, *keras2_draws(batch, height, width, rng, shift, flip))


# augmentation.name -> function(images, rng, shift, flip); "none" is no function at all.
AUGMENTATIONS: dict[str, Augmentation] = {"shift_flip": shift_flip, "keras2": keras2_shift_flip}


def make_augmentation(cfg: DictConfig) -> Optional[Callable[[np.ndarray, np.random.Generator], np.ndarray]]:
    """The batch transform of an ``augmentation`` config group (None for ``none``); a new augmentation is one
    function in :data:`AUGMENTATIONS` plus one YAML file in ``conf/augmentation/``."""
    if cfg.name == "none":
        return None
    transform = AUGMENTATIONS[cfg.name]
    return lambda images, rng: transform(images, rng, shift=cfg.shift, flip=cfg.flip)
