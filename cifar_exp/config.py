"""The typed config schema, registered in Hydra's ConfigStore, and its range checks.

The schema gives every key its type and no value: every default lives once, in the YAML groups under
``cifar_exp/conf`` (shipped with the package). Hydra merges those groups into these dataclasses, so unknown
keys and wrong types fail at composition time; :func:`validate` adds the range checks that types cannot
express. Nothing here imports TensorFlow: a bad config is reported in well under a second.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from cifar_exp.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent / "conf"


def _project_root() -> Path:
    """The checkout holding this package (where ``mlruns/`` lives), else the working directory (an installed wheel)."""
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "pyproject.toml").exists() else Path.cwd().resolve()


PROJECT_ROOT = _project_root()


def default_store_uri() -> str:
    """The project's MLflow store: ``mlruns/mlflow.db`` in the project, whatever the working directory."""
    return f"sqlite:///{PROJECT_ROOT}/mlruns/mlflow.db"


@dataclass
class DataConfig:
    source: str = MISSING
    path: Optional[str] = MISSING
    label_mode: str = MISSING
    val_split: float = MISSING
    split_seed: int = MISSING
    train_size: Optional[int] = MISSING
    test_size: Optional[int] = MISSING


@dataclass
class ModelConfig:
    name: str = MISSING


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = MISSING
    decay: float = MISSING
    momentum: float = MISSING
    nesterov: bool = MISSING


@dataclass
class DropoutConfig:
    name: str = MISSING
    conv2: float = MISSING
    conv3: float = MISSING
    dense: float = MISSING


@dataclass
class AugmentationConfig:
    name: str = MISSING
    shift: float = MISSING
    flip: bool = MISSING


@dataclass
class TrainerConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    steps_per_execution: int = MISSING
    verbose: int = MISSING
    test_each_epoch: bool = MISSING
    deterministic: bool = MISSING
    checkpoint_dir: str = MISSING
    max_minutes: Optional[float] = MISSING
    restore_best: bool = MISSING


@dataclass
class TrackingConfig:
    enabled: bool = MISSING
    uri: str = MISSING
    experiment: str = MISSING
    run_name: Optional[str] = MISSING
    register_as: Optional[str] = MISSING
    system_metrics_interval: Optional[float] = MISSING


@dataclass
class ReportFigure:
    """What the 2017 report measured for the runs whose settings match ``when`` (dotted key -> value)."""

    when: dict[str, Any] = field(default_factory=dict)
    test_accuracy: Optional[float] = None  # null where the report gave only words
    note: str = ""


@dataclass
class Config:
    seed: int = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    dropout: DropoutConfig = field(default_factory=DropoutConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    resume: Optional[str] = MISSING
    force: bool = MISSING
    experiment: Optional[str] = None  # the report experiment this run belongs to (set by experiment/*.yaml)
    report_figures: list[ReportFigure] = field(default_factory=list)  # set by experiment/*.yaml


def register() -> None:
    """Register the schema and the ``${project_root:}`` / ``${default_store_uri:}`` resolvers; idempotent."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("default_store_uri"):
        OmegaConf.register_new_resolver("default_store_uri", default_store_uri)
    ConfigStore.instance().store(name="config_schema", node=Config)


# Keys that change where a run logs or how it prints, not what it computes.
BOOKKEEPING = ("tracking", "resume", "force", "report_figures", "trainer.verbose", "trainer.checkpoint_dir")


def is_bookkeeping(dotted_key: str) -> bool:
    """Whether a dotted config key is bookkeeping (see :data:`BOOKKEEPING`)."""
    return any(dotted_key == key or dotted_key.startswith(f"{key}.") for key in BOOKKEEPING)


def config_hash(cfg: DictConfig) -> str:
    """A short hash of everything that changes what a run computes (not where it logs or how it prints)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in BOOKKEEPING:
        *parents, leaf = key.split(".")
        node = container
        for parent in parents:
            node = node.get(parent, {})
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


def format_lr(lr: float) -> str:
    """1e-4 -> '1e-4', 0.0005 -> '5e-4', 0.01 -> '1e-2'."""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def run_name(cfg: DictConfig) -> str:
    """A name that says what varies, e.g. ``adam-lr1e-4-winning-shift_flip-s0``."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    parts = [cfg.optimizer.name, f"lr{format_lr(cfg.optimizer.lr)}"]
    if cfg.optimizer.decay:
        parts.append(f"decay{cfg.optimizer.decay:g}")
    parts += [cfg.dropout.name, cfg.augmentation.name, f"s{cfg.seed}"]
    return "-".join(parts)


def report_figure_for(cfg: DictConfig) -> Optional[DictConfig]:
    """The report's figure whose ``when`` settings all match this run's config, if any."""
    for figure in cfg.get("report_figures") or []:
        if all(OmegaConf.select(cfg, key) == value for key, value in figure.when.items()):
            return figure
    return None


def options(group: str) -> tuple[str, ...]:
    """The options of a config group: its YAML files, the one place a choice is declared."""
    return tuple(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))


def _choices() -> dict[str, tuple[str, ...]]:
    return {"data.source": ("keras", "local"), "data.label_mode": ("fine", "coarse"),
            "model.name": options("model"), "optimizer.name": options("optimizer"),
            "augmentation.name": options("augmentation")}


def _get(cfg: DictConfig, dotted: str) -> Any:
    return OmegaConf.select(cfg, dotted)


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming every out-of-range setting, before any work starts."""
    problems: list[str] = []
    for key, allowed in _choices().items():
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
    interval = _get(cfg, "tracking.system_metrics_interval")
    check("tracking.system_metrics_interval", interval is None or interval > 0,
          "null (off) or a positive number of seconds")
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
