"""The typed config schema, registered in Hydra's ConfigStore; the run's name and hash derived from a config.

The schema gives every key its type and no value: every default lives once, in the YAML groups under
``cifar_exp/conf`` (shipped with the package). Hydra merges those groups into these dataclasses, so unknown
keys and wrong types fail at composition time; :func:`cifar_exp.validation.validate` adds the range checks that
types cannot express. Nothing here imports TensorFlow: a bad config is reported in well under a second.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, cast

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

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
    weight_decay: float = MISSING  # Keras' decoupled decay: each step w -= lr * weight_decay * w (not biases, BN)
    ema: Optional[float] = MISSING  # momentum of an exponential moving average of the weights (null: none)


@dataclass
class ScheduleConfig:
    """How the learning rate moves from ``optimizer.lr`` over the run; fractions are of ``optimizer.lr`` and of
    the run's optimizer steps."""

    name: str = MISSING
    warmup_fraction: float = MISSING  # share of the steps spent rising linearly to optimizer.lr
    initial_fraction: float = MISSING  # where the warm-up starts
    final_fraction: float = MISSING  # where the cosine ends


@dataclass
class LossConfig:
    label_smoothing: float = MISSING


@dataclass
class SearchConfig:
    """Which Optuna trial this job is: set by the ``optuna`` sweeper for each job of a search, null otherwise."""

    study: Optional[str] = MISSING
    storage: Optional[str] = MISSING
    trial: Optional[int] = MISSING


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
    precision: str = MISSING  # float32 | mixed (float16 compute on a GPU, bfloat16 on a CPU; float32 weights)
    tta_flip: bool = MISSING  # test predictions averaged over each image and its mirror image
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
    test_loss: Optional[float] = None  # the report's test loss for that run, where it printed one
    note: str = ""


@dataclass
class Config:
    seed: int = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    dropout: DropoutConfig = field(default_factory=DropoutConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    resume: Optional[str] = MISSING
    force: bool = MISSING
    experiment: Optional[str] = None  # the report experiment this run belongs to (set by experiment/*.yaml)
    report_figures: list[ReportFigure] = field(default_factory=list)  # set by experiment/*.yaml


def study_storage(tracking_uri: str) -> str:
    """Where a search keeps its Optuna study: a journal file beside an SQLite tracking store, else in the
    project's ``mlruns/``. Not the tracking database itself: MLflow and Optuna both keep their schema version in
    a table named ``alembic_version``, so one database cannot hold both (set ``hydra.sweeper.storage`` to a
    database of its own, e.g. ``postgresql+psycopg://.../optuna``, to share a study across machines)."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / "optuna.journal")
    return str(PROJECT_ROOT / "mlruns" / "optuna.journal")


def register() -> None:
    """Register the schema and the ``${project_root:}`` / ``${default_store_uri:}`` / ``${study_storage:uri}``
    resolvers; idempotent."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("default_store_uri"):
        OmegaConf.register_new_resolver("default_store_uri", default_store_uri)
    if not OmegaConf.has_resolver("sweep_token"):  # cached, and Hydra copies the cache into every job's config
        OmegaConf.register_new_resolver("sweep_token", lambda: uuid.uuid4().hex[:8], use_cache=True)
    if not OmegaConf.has_resolver("study_storage"):
        OmegaConf.register_new_resolver("study_storage", study_storage)
    ConfigStore.instance().store(name="config_schema", node=Config)


# Keys that change where a run logs or how it prints, not what it computes.
BOOKKEEPING = ("tracking", "resume", "force", "report_figures", "trainer.verbose", "trainer.checkpoint_dir")


def is_bookkeeping(dotted_key: str) -> bool:
    """Whether a dotted config key is bookkeeping (see :data:`BOOKKEEPING`)."""
    return any(dotted_key == key or dotted_key.startswith(f"{key}.") for key in BOOKKEEPING)


# Keys added after runs were recorded, at the values that compute exactly what those runs computed: left out of
# the hash at these values, so a run recorded before them keeps its hash (resume=auto and sweep skipping find it).
HASH_NEUTRAL: dict[str, Any] = {
    "optimizer.weight_decay": 0.0,
    "optimizer.ema": None,
    "loss": {"label_smoothing": 0.0},
    "schedule": {"name": "keras2_decay", "warmup_fraction": 0.0, "initial_fraction": 1.0, "final_fraction": 1.0},
    "trainer.precision": "float32",
    "trainer.tta_flip": False,
    "trainer.restore_best": False,
    "search": {"study": None, "storage": None, "trial": None},
}


def _pop(container: Any, dotted: str, only_if: Any = ...) -> None:
    *parents, leaf = dotted.split(".")
    node = container
    for parent in parents:
        node = node.get(parent) or {}
    if leaf in node and (only_if is ... or node[leaf] == only_if):
        node.pop(leaf)


def config_hash(cfg: DictConfig) -> str:
    """A short hash of everything that changes what a run computes (not where it logs or how it prints)."""
    container = cast(dict, OmegaConf.to_container(cfg, resolve=True))
    for key in BOOKKEEPING:
        _pop(container, key)
    for key, neutral in HASH_NEUTRAL.items():
        _pop(container, key, neutral)
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


def format_lr(lr: float) -> str:
    """1e-4 -> '1e-4', 0.0005 -> '5e-4', 0.01 -> '1e-2'."""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


MODELS_WITH_DROPOUT = ("report_cnn", "report_cnn_bn")  # the others ignore the dropout group


def run_name(cfg: DictConfig) -> str:
    """A name that says what varies, e.g. ``adam-lr1e-4-winning-shift_flip-s0`` (``-trial3`` for a search's trial);
    another model than the report's leads the name (``fast_cnn-sgd-lr2e-1-shift_flip-s0``), without the dropout
    profile where the model has no dropout layers."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    model = cfg.model.name
    parts = [] if model == "report_cnn" else [model]
    parts += [cfg.optimizer.name, f"lr{format_lr(cfg.optimizer.lr)}"]
    if cfg.optimizer.decay:
        parts.append(f"decay{cfg.optimizer.decay:g}")
    if model in MODELS_WITH_DROPOUT:
        parts.append(cfg.dropout.name)
    parts += [cfg.augmentation.name, f"s{cfg.seed}"]
    if cfg.data.label_mode != "fine":
        parts.append(cfg.data.label_mode)  # a 20-class run must never pass for a 100-class one
    if OmegaConf.select(cfg, "search.trial") is not None:
        parts.append(f"trial{cfg.search.trial}")
    return "-".join(parts)


def report_figure_for(cfg: DictConfig) -> Optional[DictConfig]:
    """The report's figure whose ``when`` settings all match this run's config, if any; none for a run on the
    20 coarse labels, since the report's figures are all 100-class accuracies."""
    if OmegaConf.select(cfg, "data.label_mode") != "fine":
        return None
    for figure in cfg.get("report_figures") or []:
        if all(OmegaConf.select(cfg, key) == value for key, value in figure.when.items()):
            return figure
    return None


def options(group: str) -> tuple[str, ...]:
    """The options of a config group: its YAML files, the one place a choice is declared."""
    return tuple(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))
