"""Optimizers and schedules (one registry each), including the Keras-2 ``decay`` the report used.

Keras 2 applied ``decay`` every step as lr_t = lr / (1 + decay * iterations); Keras 3 ignores a
``decay=`` argument (with only a warning), so it is rebuilt here as Keras' own ``InverseTimeDecay``
with ``decay_steps=1``, which computes exactly that. A new optimizer is one function in
:data:`OPTIMIZERS` plus one YAML file in ``conf/optimizer/``.
"""

from __future__ import annotations

from typing import Callable, TypeAlias

import keras
from omegaconf import DictConfig

LearningRate: TypeAlias = float | keras.optimizers.schedules.LearningRateSchedule


def learning_rate(lr: float, decay: float) -> LearningRate:
    """A constant ``lr``, or the Keras-2 per-step decay schedule when ``decay > 0``."""
    if decay == 0:
        return lr
    return keras.optimizers.schedules.InverseTimeDecay(
        initial_learning_rate=lr, decay_steps=1, decay_rate=decay, staircase=False)


def adam(cfg: DictConfig, rate: LearningRate) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=rate)


def sgd(cfg: DictConfig, rate: LearningRate) -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(learning_rate=rate, momentum=cfg.momentum, nesterov=cfg.nesterov)


OPTIMIZERS: dict[str, Callable[[DictConfig, LearningRate], keras.optimizers.Optimizer]] = {"adam": adam, "sgd": sgd}


def make_optimizer(cfg: DictConfig) -> keras.optimizers.Optimizer:
    """The optimizer of an ``optimizer`` config group, with its learning rate and Keras-2 decay."""
    return OPTIMIZERS[cfg.name](cfg, learning_rate(cfg.lr, cfg.decay))


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate the optimizer applies at its current iteration."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
