"""Each learning-rate schedule against its formula, step by step."""

from __future__ import annotations

import math

import keras
import pytest
from conftest import compose_config

from cifar_exp.schedules import inverse_time_decay, make_schedule

TOTAL = 1000


def rate(schedule, step: int) -> float:
    return schedule if isinstance(schedule, float) else float(keras.ops.convert_to_numpy(schedule(step)))


def warmup_then_cosine(step: int, lr: float, warmup: int, start: float, end: float) -> float:
    """Linear from start * lr to lr over ``warmup`` steps, then a half cosine to end * lr at step TOTAL."""
    if step < warmup:
        return lr * (start + (1 - start) * step / warmup)
    done = min(step - warmup, TOTAL - warmup) / (TOTAL - warmup)
    return lr * (end + (1 - end) * 0.5 * (1 + math.cos(math.pi * done)))


@pytest.mark.parametrize("step", [0, 1, 49, 50, 51, 300, 525, 999, 1000, 5000])
def test_cosine_with_warmup(step):
    cfg = compose_config(["schedule=cosine"]).schedule
    assert (cfg.warmup_fraction, cfg.initial_fraction, cfg.final_fraction) == (0.05, 0.0, 0.0)
    expected = warmup_then_cosine(step, 0.1, 50, 0.0, 0.0)
    assert rate(make_schedule(cfg, 0.1, 0.0, TOTAL), step) == pytest.approx(expected, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("step", [0, 1, 150, 299, 300, 301, 650, 999, 1000])
def test_one_cycle(step):
    cfg = compose_config(["schedule=one_cycle"]).schedule
    lr = 0.4
    expected = warmup_then_cosine(step, lr, 300, 1 / 25, 1 / 25 / 1e4)
    assert rate(make_schedule(cfg, lr, 0.0, TOTAL), step) == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert rate(make_schedule(cfg, lr, 0.0, TOTAL), 0) == pytest.approx(lr / 25)


def test_cosine_without_warmup_starts_at_lr():
    cfg = compose_config(["schedule=cosine", "schedule.warmup_fraction=0", "schedule.final_fraction=0.1"]).schedule
    schedule = make_schedule(cfg, 0.1, 0.0, TOTAL)
    assert rate(schedule, 0) == pytest.approx(0.1)
    assert rate(schedule, TOTAL // 2) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5), rel=1e-5)
    assert rate(schedule, TOTAL) == pytest.approx(0.01, rel=1e-5)


@pytest.mark.parametrize("step", [0, 1, 10, 1000, 100_000])
def test_default_is_todays_keras2_decay(step):
    cfg = compose_config([])
    assert cfg.schedule.name == "keras2_decay"
    assert make_schedule(cfg.schedule, 1e-4, 0.0, TOTAL) == 1e-4  # decay 0: the same float as before
    assert rate(make_schedule(cfg.schedule, 1e-4, 0.05, TOTAL), step) == pytest.approx(
        1e-4 / (1 + 0.05 * step), rel=1e-6
    )


def test_constant():
    assert make_schedule(compose_config(["schedule=constant"]).schedule, 3e-3, 0.0, TOTAL) == 3e-3


@pytest.mark.parametrize("step", [0, 1, 2, 10, 1000, 100_000])
def test_keras2_decay_values(step):
    schedule = inverse_time_decay(1e-4, 0.05)
    expected = 1e-4 / (1 + 0.05 * step)
    assert float(keras.ops.convert_to_numpy(schedule(step))) == pytest.approx(expected, rel=1e-6)


def test_no_decay_is_a_constant():
    assert inverse_time_decay(1e-3, 0.0) == 1e-3
