"""The ``optuna`` sweeper's config, with its samplers and pruners as config groups, in Hydra's ConfigStore.

Registered when Hydra scans the ``hydra_plugins`` namespace (this module imports neither Optuna nor cifar_exp's
trainer, so start-up stays fast). ``hydra/sweeper/sampler=random`` or ``hydra/sweeper/pruner=hyperband`` on the
command line switch presets; their fields are the Optuna constructors' own arguments.
"""

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TPESamplerConf:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10


@dataclass
class RandomSamplerConf:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class MedianPrunerConf:
    """Prunes a trial whose value at an epoch is worse than the median of earlier trials at that epoch."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # trials that run to the end before any is pruned
    n_warmup_steps: int = 2  # the first epochs of a trial, never pruned
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class HyperbandPrunerConf:
    """Li et al.'s Hyperband over epochs: successive halving in several brackets of starting budgets."""

    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"  # the most epochs any trial ran
    reduction_factor: int = 3


@dataclass
class ThresholdPrunerConf:
    """Prunes a trial whose value leaves [lower, upper] after ``n_warmup_steps`` epochs."""

    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: Optional[float] = None
    upper: Optional[float] = None
    n_warmup_steps: int = 0
    interval_steps: int = 1


@dataclass
class NopPrunerConf:
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.cifar_exp_optuna.sweeper.OptunaSweeper"
    _recursive_: bool = False  # the sampler and pruner arrive as configs: the jobs rebuild the pruner from its config
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])
    sampler: Any = MISSING  # from the sampler group (MISSING lets it through: the group merges before this node)
    pruner: Any = MISSING
    # The study's name (re-running the command with it continues the study); null: the search space's name (the
    # ``+search=`` choice, else "search") and a hash of the search space and of the fixed overrides.
    study_name: Optional[str] = None
    # An Optuna storage shared by the sweeper and every job: a database URL (its own database: MLflow's cannot hold
    # Optuna's tables) or a journal file path. Default: optuna.journal beside the SQLite tracking store.
    storage: Optional[str] = "${study_storage:${tracking.uri}}"
    direction: str = "maximize"
    metric: str = "val_accuracy"  # the epoch log each trial reports, prunes on and is judged by (its last value)
    n_trials: int = 20  # the study's total of finished (complete or pruned) trials: a re-run goes on up to it
    n_jobs: int = 1  # trials launched at once; match the launcher's (hydra.launcher.n_jobs) to run them in parallel
    max_failure_rate: float = 0.5  # the search stops once more than this share of n_trials have failed (0: at once)
    params: Optional[dict[str, str]] = None  # the search space, in Hydra's sweep syntax (choice, interval, range)


def register() -> None:
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="cifar_exp_optuna")
    presets: list[tuple[str, str, type]] = [
        ("sampler", "tpe", TPESamplerConf),
        ("sampler", "random", RandomSamplerConf),
        ("pruner", "median", MedianPrunerConf),
        ("pruner", "hyperband", HyperbandPrunerConf),
        ("pruner", "threshold", ThresholdPrunerConf),
        ("pruner", "none", NopPrunerConf),
    ]
    for group, name, node in presets:
        store.store(group=f"hydra/sweeper/{group}", name=name, node=node, provider="cifar_exp_optuna")


register()
