"""Batches depend on (seed, epoch, batch index) alone: the promise that makes a resumed run see exactly the
batches an uninterrupted one would."""

from __future__ import annotations

import numpy as np

from cifar_exp.augment import shift_flip
from cifar_exp.pipeline import Batches


def _data(n: int = 70) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10


def _epoch(batches: Batches) -> list[tuple[np.ndarray, np.ndarray]]:
    return [batches[i] for i in range(len(batches))]


def test_every_image_once_per_epoch_in_batches_of_the_size():
    x, y = _data()
    batches = Batches(x, y, batch_size=32, seed=1)
    epoch = _epoch(batches)
    assert [len(b[1]) for b in epoch] == [32, 32, 6]
    assert sorted(np.concatenate([b[1] for b in epoch]).tolist()) == sorted(y.tolist())


def test_batches_depend_on_seed_epoch_and_index_only():
    x, y = _data()
    augment = lambda images, rng: shift_flip(images, rng)  # noqa: E731
    first = Batches(x, y, 16, seed=3, augment=augment)
    first.on_epoch_end()  # walk into epoch 1 the way fit does
    resumed = Batches(x, y, 16, seed=3, augment=augment, epoch=1)  # a run restarted at epoch 1
    for (xa, ya), (xb, yb) in zip(_epoch(first), _epoch(resumed)):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    # in any order, as background threads build them
    for i in reversed(range(len(first))):
        np.testing.assert_array_equal(first[i][0], resumed[i][0])


def test_epochs_and_seeds_reshuffle():
    x, y = _data()
    a = Batches(x, y, 70, seed=3)
    order0 = a[0][1].copy()
    a.on_epoch_end()
    assert not np.array_equal(order0, a[0][1])
    assert not np.array_equal(order0, Batches(x, y, 70, seed=4)[0][1])
