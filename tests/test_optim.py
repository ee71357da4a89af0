from __future__ import annotations

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from cifar_exp.optim import current_learning_rate, learning_rate, make_optimizer


@pytest.mark.parametrize("step", [0, 1, 2, 10, 1000, 100_000])
def test_keras2_decay_values(step):
    schedule = learning_rate(1e-4, 0.05)
    expected = 1e-4 / (1 + 0.05 * step)
    assert float(keras.ops.convert_to_numpy(schedule(step))) == pytest.approx(expected, rel=1e-6)


def test_no_decay_is_a_constant():
    assert learning_rate(1e-3, 0.0) == 1e-3


def test_optimizer_applies_the_decay_every_step():
    optimizer = make_optimizer(OmegaConf.create({"name": "adam", "lr": 1e-4, "decay": 0.05}))
    variable = keras.Variable(np.ones(3, dtype="float32"))
    optimizer.build([variable])
    for _ in range(20):
        optimizer.apply_gradients([(keras.ops.ones(3), variable)])
    assert current_learning_rate(optimizer) == pytest.approx(1e-4 / (1 + 0.05 * 20), rel=1e-5)


def test_sgd_settings():
    optimizer = make_optimizer(OmegaConf.create({"name": "sgd", "lr": 0.01, "decay": 0.0, "momentum": 0.9,
                                                 "nesterov": True}))
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.momentum == 0.9 and optimizer.nesterov
    assert current_learning_rate(optimizer) == pytest.approx(0.01)
