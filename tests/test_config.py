"""Every option of every config group composes; every out-of-range value is refused with its name."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_config
from omegaconf import OmegaConf

from cifar_exp.config import PROJECT_ROOT
from cifar_exp.validation import validate

CONF = PROJECT_ROOT / "conf"
GROUPS = {
    g.name: sorted(p.stem for p in g.glob("*.yaml"))
    for g in CONF.iterdir()
    if g.is_dir() and g.name not in ("hydra", "experiment", "search")
}
EXPERIMENTS = sorted(p.stem for p in (PROJECT_ROOT / "experiments").glob("*.yaml"))


def test_defaults_are_the_report_winning_run():
    cfg = compose_config([])
    assert cfg.optimizer.name == "adam" and cfg.optimizer.lr == 1e-4 and cfg.optimizer.decay == 0
    assert (cfg.dropout.conv2, cfg.dropout.conv3, cfg.dropout.dense) == (0.1, 0.25, 0.5)
    assert cfg.augmentation.name == "shift_flip" and cfg.augmentation.shift == 0.1 and cfg.augmentation.flip
    assert cfg.trainer.epochs == 150 and cfg.trainer.batch_size == 32
    assert cfg.data.source == "keras" and cfg.data.val_split == 0.17 and cfg.data.split_seed == 42
    assert cfg.tracking.uri == f"sqlite:///{PROJECT_ROOT}/mlruns/mlflow.db"
    validate(cfg)


@pytest.mark.parametrize("group,option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_group_option_composes(group, option, npz_dir):
    cfg = compose_config([f"{group}={option}"] + ([f"data.path={npz_dir}"] if group == "data" else []))
    validate(cfg)


def test_expected_options_exist():
    assert {"adam", "sgd"} <= set(GROUPS["optimizer"])
    assert {"winning", "baseline", "report_exp3", "none"} <= set(GROUPS["dropout"])
    assert {"none", "shift_flip", "keras2"} <= set(GROUPS["augmentation"])
    assert {"learning_rate", "dropout", "decay", "sgd", "augmentation", "winning"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes(name):
    cfg = compose_config([f"+experiment={name}"])
    assert cfg.experiment == name
    validate(cfg)


def test_schema_is_typed():
    cfg = compose_config([])
    assert OmegaConf.get_type(cfg.optimizer).__name__ == "OptimizerConfig"
    assert Path(cfg.tracking.uri.removeprefix("sqlite:///")).is_absolute()
