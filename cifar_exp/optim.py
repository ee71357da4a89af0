"""Optimizers (one registry), including the Keras-2 ``decay`` the report used.

Each optimizer takes its learning rate from a schedule of :mod:`cifar_exp.schedules`: Keras 2 applied ``decay``
every step as lr_t = lr / (1 + decay * iterations), and Keras 3 ignores a ``decay=`` argument (with only a
warning), so the report's decay is that module's ``keras2_decay`` schedule (Keras' own ``InverseTimeDecay`` with
``decay_steps=1``), not an optimizer argument. Weight decay is Keras' decoupled one and skips biases
and batch-norm scales and offsets; ``ema`` is Keras' own weight average (``use_ema``). A new optimizer is one
function in :data:`OPTIMIZERS` plus one YAML file in ``conf/optimizer/``.
"""

from __future__ import annotations

from typing import Any, Callable

import keras
from omegaconf import DictConfig

from cifar_exp.schedules import LearningRate

NO_WEIGHT_DECAY = ["bias", "gamma", "beta"]  # biases, batch-norm scales and offsets


def _common(cfg: DictConfig) -> dict[str, Any]:
    """Weight decay and the weight average, which every Keras optimizer takes; off unless configured."""
    ema = cfg.get("ema")
    return {
        "weight_decay": cfg.get("weight_decay") or None,
        "use_ema": ema is not None,
        **({"ema_momentum": ema} if ema is not None else {}),
    }


def adam(cfg: DictConfig, rate: LearningRate) -> keras.optimizers.Optimizer:
    """Keras' Adam (the report's optimizer)."""
    return keras.optimizers.Adam(learning_rate=rate, **_common(cfg))


def adamw(cfg: DictConfig, rate: LearningRate) -> keras.optimizers.Optimizer:
    """Keras' AdamW: Adam with ``optimizer.weight_decay`` decoupled from the gradient."""
    return keras.optimizers.AdamW(learning_rate=rate, **{**_common(cfg), "weight_decay": cfg.weight_decay})


def sgd(cfg: DictConfig, rate: LearningRate) -> keras.optimizers.Optimizer:
    """Keras' SGD with ``optimizer.momentum`` and ``optimizer.nesterov`` (the report's SGD had neither)."""
    return keras.optimizers.SGD(learning_rate=rate, momentum=cfg.momentum, nesterov=cfg.nesterov, **_common(cfg))


OPTIMIZERS: dict[str, Callable[[DictConfig, LearningRate], keras.optimizers.Optimizer]] = {
    "adam": adam,
    "adamw": adamw,
    "sgd": sgd,
}


def make_optimizer(cfg: DictConfig, rate: LearningRate) -> keras.optimizers.Optimizer:
    """The optimizer of an ``optimizer`` config group, at learning rate ``rate`` (a number or a schedule)."""
    optimizer = OPTIMIZERS[cfg.name](cfg, rate)
    if optimizer.weight_decay is not None:
        optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return optimizer


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate the optimizer applies at its current iteration."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
