from __future__ import annotations

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from cifar_exp.optim import OPTIMIZERS, current_learning_rate, make_optimizer
from cifar_exp.schedules import inverse_time_decay
from cifar_exp.validation import MOMENTUM_OPTIMIZERS


def test_optimizer_applies_the_decay_every_step():
    optimizer = make_optimizer(OmegaConf.create({"name": "adam", "lr": 1e-4}), inverse_time_decay(1e-4, 0.05))
    variable = keras.Variable(np.ones(3, dtype="float32"))
    optimizer.build([variable])
    for _ in range(20):
        optimizer.apply_gradients([(keras.ops.ones(3), variable)])
    assert current_learning_rate(optimizer) == pytest.approx(1e-4 / (1 + 0.05 * 20), rel=1e-5)


def test_sgd_settings():
    optimizer = make_optimizer(
        OmegaConf.create({"name": "sgd", "lr": 0.01, "decay": 0.0, "momentum": 0.9, "nesterov": True}), 0.01
    )
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.momentum == 0.9 and optimizer.nesterov
    assert current_learning_rate(optimizer) == pytest.approx(0.01)


def test_adamw_and_sgd_weight_decay_skip_biases_and_batch_norm():
    adamw = make_optimizer(
        OmegaConf.create({"name": "adamw", "lr": 1e-3, "decay": 0.0, "weight_decay": 0.004, "ema": None}), 1e-3
    )
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 0.004 and not adamw.use_ema
    kernel = keras.Variable(np.ones(3, "float32"), name="kernel")
    bias = keras.Variable(np.ones(3, "float32"), name="bias")
    sgd = make_optimizer(
        OmegaConf.create(
            {
                "name": "sgd",
                "lr": 0.1,
                "decay": 0.0,
                "momentum": 0.0,
                "nesterov": False,
                "weight_decay": 0.5,
                "ema": None,
            }
        ),
        0.1,
    )
    sgd.build([kernel, bias])
    sgd.apply_gradients([(keras.ops.zeros(3), kernel), (keras.ops.zeros(3), bias)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), 1 - 0.1 * 0.5)  # decoupled: w -= lr * wd * w
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bias), 1.0)


def test_ema_is_keras_own():
    optimizer = make_optimizer(
        OmegaConf.create({"name": "adam", "lr": 1e-3, "decay": 0.0, "weight_decay": 0.0, "ema": 0.99}), 1e-3
    )
    assert optimizer.use_ema and optimizer.ema_momentum == 0.99 and optimizer.weight_decay is None


def test_schedule_drives_the_optimizer():
    from cifar_exp.schedules import make_schedule

    schedule = make_schedule(
        OmegaConf.create({"name": "cosine", "warmup_fraction": 0.5, "initial_fraction": 0.0, "final_fraction": 0.0}),
        0.2,
        0.0,
        10,
    )
    optimizer = make_optimizer(
        OmegaConf.create({"name": "sgd", "lr": 0.2, "decay": 0.0, "momentum": 0.9, "nesterov": True}), schedule
    )
    variable = keras.Variable(np.ones(3, dtype="float32"))
    optimizer.build([variable])
    for _ in range(5):
        optimizer.apply_gradients([(keras.ops.ones(3), variable)])
    assert current_learning_rate(optimizer) == pytest.approx(0.2)  # the end of the warm-up


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_momentum_is_refused_exactly_for_the_optimizers_without_it(name):
    """validation.MOMENTUM_OPTIMIZERS decides where optimizer.momentum may be set: it must name exactly the
    optimizers that apply it."""
    cfg = OmegaConf.create({"name": name, "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01})
    applies_momentum = getattr(make_optimizer(cfg, 0.1), "momentum", None) == 0.9
    assert applies_momentum == (name in MOMENTUM_OPTIMIZERS)
