"""Learning-rate schedules, one registry: each option of the ``schedule`` config group is a function from the
config, the optimizer's ``lr`` and ``decay`` and the run's total optimizer steps to a Keras learning rate.

Every schedule is one of Keras' own (``InverseTimeDecay``, ``CosineDecay`` with its linear warm-up), so a saved
``.h5`` deserialises it without this package. A new schedule is one function in :data:`SCHEDULES` plus one YAML
file in ``conf/schedule/``.
"""

from __future__ import annotations

from typing import Callable, TypeAlias, Union

import keras
from omegaconf import DictConfig

LearningRate: TypeAlias = Union[float, keras.optimizers.schedules.LearningRateSchedule]


def inverse_time_decay(lr: float, decay: float) -> LearningRate:
    """Keras 2's ``decay``, lr / (1 + decay * step) every step; a constant ``lr`` when ``decay`` is 0."""
    if decay == 0:
        return lr
    return keras.optimizers.schedules.InverseTimeDecay(
        initial_learning_rate=lr, decay_steps=1, decay_rate=decay, staircase=False
    )


def keras2_decay(cfg: DictConfig, lr: float, decay: float, total_steps: int) -> LearningRate:
    """The report's schedule: :func:`inverse_time_decay` with ``optimizer.decay``."""
    return inverse_time_decay(lr, decay)


def constant(cfg: DictConfig, lr: float, decay: float, total_steps: int) -> LearningRate:
    """``optimizer.lr`` throughout (validation requires ``optimizer.decay=0`` with it)."""
    return lr


def cosine(cfg: DictConfig, lr: float, decay: float, total_steps: int) -> LearningRate:
    """Linear from ``initial_fraction * lr`` to ``lr`` over ``warmup_fraction`` of the steps, then half a cosine
    down to ``final_fraction * lr`` at the last step (also the shape of ``one_cycle``, with other fractions)."""
    warmup = int(round(cfg.warmup_fraction * total_steps))
    decay_steps = max(total_steps - warmup, 1)
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps, alpha=cfg.final_fraction)
    return keras.optimizers.schedules.CosineDecay(
        cfg.initial_fraction * lr, decay_steps, alpha=cfg.final_fraction, warmup_target=lr, warmup_steps=warmup
    )


SCHEDULES: dict[str, Callable[[DictConfig, float, float, int], LearningRate]] = {
    "keras2_decay": keras2_decay,
    "constant": constant,
    "cosine": cosine,
    "one_cycle": cosine,
}


def make_schedule(cfg: DictConfig, lr: float, decay: float, total_steps: int) -> LearningRate:
    """The learning rate of a ``schedule`` config group for a run of ``total_steps`` optimizer steps."""
    return SCHEDULES[cfg.name](cfg, lr, decay, total_steps)
