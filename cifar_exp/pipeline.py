"""Batches for Keras ``fit``: uint8 images kept in memory, shuffled and augmented anew every epoch.

A :class:`keras.utils.PyDataset` works under every Keras backend (TensorFlow, JAX, PyTorch) and builds
batches in background threads while the model trains. Every batch's randomness is derived from
(seed, epoch, batch index) alone, so batches are the same whatever thread builds them, and a run
restarted at epoch ``e`` sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import keras
import numpy as np

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class Batches(keras.utils.PyDataset):
    """Shuffled (and optionally augmented) uint8 batches of ``x`` with labels ``y``: class numbers, or one-hot rows
    where label smoothing needs them."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        seed: int,
        augment: Optional[Augment] = None,
        shuffle: bool = True,
        epoch: int = 0,
        workers: int = 2,
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=16)
        self.x, self.y = x, y.astype(np.int32)
        self.batch_size, self.seed, self.augment, self.shuffle = batch_size, seed, augment, shuffle
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the order and augmentation stream of ``epoch`` (0-based)."""
        self.epoch = epoch
        self.order = (
            np.random.default_rng([self.seed, epoch]).permutation(len(self.y))
            if self.shuffle
            else np.arange(len(self.y))
        )

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        take = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = self.x[take]
        if self.augment is not None:
            images = self.augment(images, np.random.default_rng([self.seed, self.epoch, index]))
        return images, self.y[take]

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)
