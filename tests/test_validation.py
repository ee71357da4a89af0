"""The checks a composed config must pass before any work (cifar_exp.validation): ranges types cannot express,
every problem of a config said together."""

from __future__ import annotations

import pytest
from conftest import compose_config

from cifar_exp.errors import ConfigError
from cifar_exp.validation import problems, validate


def test_local_source_needs_an_existing_path(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        validate(compose_config(["data.source=local", f"data.path={tmp_path / 'missing'}"]))
    with pytest.raises(ConfigError, match="needs data.path"):
        validate(compose_config(["data.source=local"]))


def test_a_data_path_that_is_a_symlink_loop_is_said_not_raised(tmp_path):
    """Path.resolve raised RuntimeError ("Symlink loop from ...") inside the check: a traceback, exit 1."""
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError, match="does not exist \\(a symlink loop"):
        validate(compose_config(["data=local", f"data.path={loop}"]))


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
@pytest.mark.parametrize("key", ["optimizer.lr", "optimizer.decay", "optimizer.weight_decay"])
def test_rates_that_are_not_finite_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"{key}=.* must be .*finite"):
        validate(compose_config([f"{key}={value}"]))


def test_every_problem_is_said_at_once():
    said = problems(compose_config(["optimizer.lr=-1", "trainer.epochs=0", "optimizer.momentum=0.9"]))
    assert len(said) == 3
    with pytest.raises(ConfigError) as refused:
        validate(compose_config(["optimizer.lr=-1", "trainer.epochs=0"]))
    assert "optimizer.lr=-1" in str(refused.value) and "trainer.epochs=0" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_an_interpolation_that_resolves_to_nothing_is_named_alone():
    from cifar_exp.validation import problems

    cfg = compose_config(["trainer.epochs=${oops}"])
    assert problems(cfg) == ["trainer.epochs: Interpolation key 'oops' not found"]
