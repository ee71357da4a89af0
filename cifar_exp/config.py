"""The typed config schema, registered in Hydra's ConfigStore, and its range checks.

Hydra merges the YAML groups under ``conf/`` into these dataclasses, so unknown keys and wrong types
fail at composition time; :func:`validate` adds the range checks that types cannot express. Nothing
here imports TensorFlow: a bad config is reported in well under a second.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from cifar_exp.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]



@dataclass
class DataConfig:
    source: str = "keras"  # keras | local
    path: Optional[str] = None  # pickles folder, cifar-100-python.tar.gz, or a folder of train/test.npz
    label_mode: str = "fine"  # fine | coarse
    val_split: float = 0.17  # 0 validates on the test set
    split_seed: int = 42
    train_size: Optional[int] = None  # null keeps all; an int keeps a class-stratified subset
    test_size: Optional[int] = None


@dataclass
class ModelConfig:
    name: str = "report_cnn"


@dataclass
class OptimizerConfig:
    name: str = "adam"  # adam | sgd
    lr: float = 1e-4
    decay: float = 0.0  # Keras-2 meaning: lr_t = lr / (1 + decay * iterations)
    momentum: float = 0.0  # sgd only
    nesterov: bool = False  # sgd only


@dataclass
class DropoutConfig:
    name: str = "winning"
    conv2: float = 0.1  # after the second conv block
    conv3: float = 0.25  # after the third conv block
    dense: float = 0.5  # after the 512-unit dense layer


@dataclass
class AugmentationConfig:
    name: str = "shift_flip"  # none | shift_flip | keras2
    shift: float = 0.1  # fraction of the image side, each axis
    flip: bool = True  # random horizontal flip


@dataclass
class TrainerConfig:
    epochs: int = 150
    batch_size: int = 32
    steps_per_execution: int = 1
    verbose: int = 2  # Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch
    test_each_epoch: bool = False  # also score the test set after every epoch (epoch_test_accuracy)
    deterministic: bool = False  # TensorFlow op determinism: identical reruns, somewhat slower
    checkpoint_dir: str = "${project_root:}/mlruns/checkpoints"  # one folder per MLflow run id
    max_minutes: Optional[float] = None  # wall-clock budget: stop before an epoch that would overrun it


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str = "sqlite:///${project_root:}/mlruns/mlflow.db"
    experiment: str = "cifar_exp"
    run_name: Optional[str] = None  # null: a name that says what varies, e.g. adam-lr1e-4-winning-shift_flip-s0


@dataclass
class ReportFigure:
    """What the 2017 report measured for the runs whose settings match ``when`` (dotted key -> value)."""

    when: dict[str, Any] = field(default_factory=dict)
    test_accuracy: Optional[float] = None  # null where the report gave only words
    test_loss: Optional[float] = None  # the report's test loss for that run, where it printed one
    note: str = ""


@dataclass
class Config:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    dropout: DropoutConfig = field(default_factory=DropoutConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    resume: Optional[str] = None  # an MLflow run id to continue, or "auto" (the latest unfinished run of this config)
    force: bool = False  # in a sweep, rerun configurations that already FINISHED
    experiment: Optional[str] = None  # the report experiment this run belongs to (set by experiments/*.yaml)
    report_figures: list[ReportFigure] = field(default_factory=list)  # set by experiments/*.yaml


def register() -> None:
    """Register the schema and the ``${project_root:}`` resolver; idempotent."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    ConfigStore.instance().store(name="config_schema", node=Config)


NOT_HASHED = ("tracking", "resume", "force", "report_figures")
NOT_HASHED_TRAINER = ("verbose", "checkpoint_dir")


def config_hash(cfg: DictConfig) -> str:
    """A short hash of everything that changes what a run computes (not where it logs or how it prints)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in NOT_HASHED:
        container.pop(key, None)
    for key in NOT_HASHED_TRAINER:
        container.get("trainer", {}).pop(key, None)
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


def report_figure_for(cfg: DictConfig) -> Optional[DictConfig]:
    """The report's figure whose ``when`` settings all match this run's config, if any."""
    for figure in cfg.get("report_figures") or []:
        if all(OmegaConf.select(cfg, key) == value for key, value in figure.when.items()):
            return figure
    return None


_CHOICES = {
    "data.source": ("keras", "local"),
    "data.label_mode": ("fine", "coarse"),
    "model.name": ("report_cnn",),
    "optimizer.name": ("adam", "sgd"),
    "augmentation.name": ("none", "shift_flip", "keras2"),
}


def _get(cfg: DictConfig, dotted: str) -> Any:
    return OmegaConf.select(cfg, dotted)


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming every out-of-range setting, before any work starts."""
    problems: list[str] = []
    for key, allowed in _CHOICES.items():
        if _get(cfg, key) not in allowed:
            problems.append(f"{key}={_get(cfg, key)!r} is not one of {', '.join(allowed)}")

    def check(key: str, ok: bool, rule: str) -> None:
        if not ok:
            problems.append(f"{key}={_get(cfg, key)!r} must be {rule}")

    check("optimizer.lr", _get(cfg, "optimizer.lr") > 0, "> 0 (e.g. optimizer.lr=1e-4)")
    check("optimizer.decay", _get(cfg, "optimizer.decay") >= 0, ">= 0 (0 switches decay off)")
    check("optimizer.momentum", 0 <= _get(cfg, "optimizer.momentum") < 1, "in [0, 1)")
    for rate in ("conv2", "conv3", "dense"):
        value = _get(cfg, f"dropout.{rate}")
        check(f"dropout.{rate}", 0 <= value < 1, "a dropout rate in [0, 1)")
    check("augmentation.shift", 0 <= _get(cfg, "augmentation.shift") < 0.5, "a fraction in [0, 0.5)")
    check("trainer.epochs", _get(cfg, "trainer.epochs") >= 1, ">= 1")
    check("trainer.batch_size", _get(cfg, "trainer.batch_size") >= 1, ">= 1 (the report used 32)")
    check("trainer.steps_per_execution", _get(cfg, "trainer.steps_per_execution") >= 1, ">= 1")
    budget = _get(cfg, "trainer.max_minutes")
    check("trainer.max_minutes", budget is None or budget > 0, "null (no limit) or a positive number of minutes")
    check("data.val_split", 0 <= _get(cfg, "data.val_split") < 1, "in [0, 1) (0 validates on the test set)")
    for size in ("data.train_size", "data.test_size"):
        value = _get(cfg, size)
        check(size, value is None or value >= 1, "null (all images) or a positive number of images")
    if _get(cfg, "data.source") == "local":
        path = _get(cfg, "data.path")
        if not path:
            problems.append("data.source=local needs data.path=<folder with train.npz/test.npz, "
                            "the cifar-100-python pickles, or cifar-100-python.tar.gz>")
        elif not Path(path).exists():
            problems.append(f"data.path={path!r} does not exist (resolved to {Path(path).resolve()}); "
                            "point it at a local CIFAR-100 copy, e.g. data.path=../shared/data/cifar100")
    if problems:
        raise ConfigError("Invalid configuration: " + "; ".join(problems) + ". Nothing was trained or logged.")
