"""The typed config schema, registered in Hydra's ConfigStore, and where the project keeps its configs and store.

The schema gives every key its type and no value: every default lives once, in the YAML groups under
``cifar_exp/conf`` (shipped with the package). Hydra merges those groups into these dataclasses, so unknown
keys and wrong types fail at composition time; :func:`cifar_exp.validation.validate` adds the range checks that
types cannot express. Nothing here imports TensorFlow: a bad config is reported in well under a second.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, cast

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

CONF_DIR = Path(__file__).resolve().parent / "conf"


def _checkout() -> Optional[Path]:
    """The source checkout holding this package, None for an installed wheel."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").exists() else None


CHECKOUT = _checkout()  # the code's own folder: its git commit is the code version a run records
PROJECT_ROOT = CHECKOUT or Path.cwd().resolve()  # where ``mlruns/`` lives: the checkout, else the working directory


def default_store_uri() -> str:
    """The project's MLflow store: ``mlruns/mlflow.db`` in the project, whatever the working directory."""
    return f"sqlite:///{PROJECT_ROOT}/mlruns/mlflow.db"


def default_experiment() -> str:
    """The MLflow experiment runs go to unless ``tracking.experiment`` says otherwise (its one home is the YAML),
    for the commands that read a store without composing a training config (report, ui)."""
    from omegaconf import OmegaConf

    return str(OmegaConf.load(CONF_DIR / "tracking" / "local.yaml").experiment)


@dataclass
class DataConfig:
    """Which copy of CIFAR-100 a run trains on, and how it is split (``conf/data/``)."""

    source: str = MISSING
    path: Optional[str] = MISSING
    label_mode: str = MISSING
    val_split: float = MISSING
    split_seed: int = MISSING
    train_size: Optional[int] = MISSING
    test_size: Optional[int] = MISSING


@dataclass
class ModelConfig:
    """Which network builds the model (``conf/model/``: the names in ``models.BUILDERS``)."""

    name: str = MISSING


@dataclass
class OptimizerConfig:
    """The optimizer and its settings (``conf/optimizer/``; ``decay``: Keras 2's per-step inverse-time decay)."""

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
    """The loss's settings beyond cross-entropy itself."""

    label_smoothing: float = MISSING


@dataclass
class SearchConfig:
    """Which Optuna trial this job is: set by the ``optuna`` sweeper for each job of a search, null otherwise."""

    study: Optional[str] = MISSING
    storage: Optional[str] = MISSING
    trial: Optional[int] = MISSING


@dataclass
class DropoutConfig:
    """Dropout after the second and third conv blocks and the dense layer (``conf/dropout/``: the report's)."""

    name: str = MISSING
    conv2: float = MISSING
    conv3: float = MISSING
    dense: float = MISSING


@dataclass
class AugmentationConfig:
    """Real-time augmentation of the training images (``conf/augmentation/``)."""

    name: str = MISSING
    shift: float = MISSING
    flip: bool = MISSING


@dataclass
class TrainerConfig:
    """How long and how a run trains, and what it keeps beside (checkpoints, time budget, precision)."""

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
    """Where and how a run is recorded in MLflow (``conf/tracking/``)."""

    enabled: bool = MISSING
    uri: str = MISSING
    experiment: str = MISSING
    run_name: Optional[str] = MISSING
    register_as: Optional[str] = MISSING
    system_metrics_interval: Optional[float] = MISSING
    records: Optional[str] = MISSING


@dataclass
class ReportFigure:
    """What the 2017 report measured for the runs whose settings match ``when`` (dotted key -> value)."""

    when: dict[str, Any] = field(default_factory=dict)
    test_accuracy: Optional[float] = None  # null where the report gave only words
    test_loss: Optional[float] = None  # the report's test loss for that run, where it printed one
    note: str = ""


@dataclass
class Config:
    """One run as Hydra composes it from ``conf/``: types only (the YAML files hold every default)."""

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


def task_overrides(hydra: Any) -> list[str]:
    """The command line's overrides as typed, from Hydra's own config (``config.hydra`` or ``HydraConfig.get()``):
    iterating its list would resolve an interpolation inside one (``trainer.epochs=${oops}``), and fail."""
    return [str(override) for override in cast(list, OmegaConf.to_container(hydra.overrides.task, resolve=False))]


def sqlite_path(uri: str) -> Optional[Path]:
    """The database file of a ``sqlite:///`` URI, else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def study_storage(tracking_uri: str) -> str:
    """Where a search keeps its Optuna study: a journal file beside an SQLite tracking store, else in the
    project's ``mlruns/``. Not the tracking database itself: MLflow and Optuna both keep their schema version in
    a table named ``alembic_version``, so one database cannot hold both (set ``hydra.sweeper.storage`` to a
    database of its own, e.g. ``postgresql+psycopg://.../optuna``, to share a study across machines)."""
    db = sqlite_path(tracking_uri)
    if db is not None:
        return str(db.parent / "optuna.journal")
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


def options(group: str) -> tuple[str, ...]:
    """The options of a config group: its YAML files, the one place a choice is declared."""
    return tuple(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))
