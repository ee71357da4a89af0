"""Optimizers and schedules, including the Keras-2 ``decay`` the report used.

Keras 2 applied ``decay`` every step as lr_t = lr / (1 + decay * iterations); Keras 3 ignores a
``decay=`` argument (with only a warning), so it is rebuilt here as Keras' own ``InverseTimeDecay``
with ``decay_steps=1``, which computes exactly that.
"""

from __future__ import annotations

import keras


def learning_rate(lr: float, decay: float) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """A constant ``lr``, or the Keras-2 per-step decay schedule when ``decay > 0``."""
    if decay == 0:
        return lr
    return keras.optimizers.schedules.InverseTimeDecay(
        initial_learning_rate=lr, decay_steps=1, decay_rate=decay, staircase=False)


def make_optimizer(name: str, lr: float, decay: float = 0.0, momentum: float = 0.0,
                   nesterov: bool = False) -> keras.optimizers.Optimizer:
    """Adam or SGD with the given learning rate and Keras-2 decay."""
    rate = learning_rate(lr, decay)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=momentum, nesterov=nesterov)
    raise ValueError(f"unknown optimizer {name!r}")


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate the optimizer applies at its current iteration."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
