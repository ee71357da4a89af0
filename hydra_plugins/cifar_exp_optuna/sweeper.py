"""The Hydra ``Sweeper`` plugin class; the work (and the Optuna import) is in :mod:`._impl`, loaded on use."""

from __future__ import annotations

from typing import Any, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    """Asks an Optuna study for trials, launches one job per trial and tells the study what each measured."""

    def __init__(
        self,
        sampler: Any,
        pruner: Any,
        study_name: Optional[str],
        storage: Optional[str],
        direction: str,
        metric: str,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: Optional[DictConfig],
    ) -> None:
        from hydra_plugins.cifar_exp_optuna._impl import OptunaSweeperImpl

        self.impl = OptunaSweeperImpl(
            sampler, pruner, study_name, storage, direction, metric, n_trials, n_jobs, max_failure_rate, params
        )

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.impl.sweep(arguments)
