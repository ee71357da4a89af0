"""A search's results in ``<sweep dir>/optuna/``: the best trial with the command line that trains it alone, every
trial as a table, and Optuna's plots; the sweep's callback logs them on the search's parent run."""

from __future__ import annotations

import logging
import shlex
import warnings
from pathlib import Path
from typing import Any, Optional

import optuna
from omegaconf import OmegaConf
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from cifar_exp.search import BEST_TRIAL_FILE
from hydra_plugins.cifar_exp_optuna.space import format_value

log = logging.getLogger(__name__)


def best_command(fixed: list[str], params: dict[str, Any]) -> str:
    """The command line that trains the best trial's configuration on its own."""
    overrides = [*fixed, *(f"{key}={format_value(value)}" for key, value in params.items())]
    return "python -m cifar_exp " + " ".join(shlex.quote(o) for o in overrides)


def write_results(
    study: optuna.Study, fixed: list[str], folder: Path, metric: str, storage: Optional[str] = None
) -> None:
    """``best_trial.yaml`` (its number, value, parameters and command line; the study's storage, as its jobs were
    given it), ``trials.csv`` and Optuna's plots."""
    folder.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    summary: dict[str, Any] = {
        "study": study.study_name,
        "metric": metric,
        **({"storage": storage} if storage is not None else {}),
        "direction": study.direction.name.lower(),
        "trials": {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState},
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        summary["best"] = {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "test_accuracy": best.user_attrs.get("test_accuracy"),
            "command": best_command(fixed, best.params),
        }
        log.info("best trial %d: %s=%.4f, %s", best.number, metric, best.value, summary["best"]["command"])
    OmegaConf.save(OmegaConf.create(summary), folder / BEST_TRIAL_FILE)
    study.trials_dataframe().to_csv(folder / "trials.csv", index=False)
    _plots(study, folder)


def _plots(study: optuna.Study, folder: Path) -> None:
    """Optuna's matplotlib plots; one that the study cannot make yet (too few trials) is left out, saying why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    for name, plot in (
        ("optimization_history", plots.plot_optimization_history),
        ("param_importances", plots.plot_param_importances),
        ("intermediate_values", plots.plot_intermediate_values),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)  # Optuna's matplotlib plots say they are new
                plot(study)
            plt.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
            plt.close("all")
        except Exception as error:  # noqa: BLE001 (a plot is a nicety; the study's results are written anyway)
            log.info("no %s plot: %s", name, error)
