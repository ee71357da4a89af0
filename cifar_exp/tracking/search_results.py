"""A hyper-parameter search's results on its sweep parent run: what the ``optuna`` sweeper wrote to
``<sweep dir>/optuna/`` (the best trial with its command line, every trial as a table, Optuna's plots)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml
from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient

from cifar_exp.search import BEST_TRIAL_FILE, RESULTS_DIR
from cifar_exp.tracking.registry import alias_run, register_best
from cifar_exp.tracking.run import TAG_BEST_RUN, TAG_NOTE, Run
from cifar_exp.tracking.store import client_for


def is_search(folder: Path) -> bool:
    """Whether the sweep whose results folder is ``folder`` was a search (the ``optuna`` sweeper wrote there)."""
    return (folder / BEST_TRIAL_FILE).exists()


def record_search(uri: str, parent_run_id: str, folder: Path, register_as: Optional[str] = None) -> dict[str, Any]:
    """Log the search results in ``folder`` on the parent: artifacts under ``optuna/``, tags ``study``,
    ``best_trial``, ``best_command``, metric ``best_trial_value``, and a sentence in its description; nothing when
    the sweep was not a search. With ``register_as``, the study's best trial's model is registered under that name
    and ``@best`` points at it: the trial the study judged best on its validation metric (never the test set), in
    whichever run of the study it ran (a continued study's best may be an earlier search's). Where ``@best`` holds
    another study's model (two searches over the same keys share a name), it moves only to a model that scored at
    least its test accuracy, as between grid sweeps: the two studies' validation metrics need not be comparable."""
    if not is_search(folder):
        return {}
    summary: dict[str, Any] = yaml.safe_load((folder / BEST_TRIAL_FILE).read_text())
    client = client_for(uri)
    run = Run(client, parent_run_id)
    run.log_artifacts(folder, RESULTS_DIR)
    counts = ", ".join(f"{n} {state}" for state, n in summary["trials"].items() if n)
    tags = {"study": summary["study"], "search_trials": counts}
    note = f" Optuna study **{summary['study']}**: {counts}."
    best = summary.get("best")
    if best:
        tags.update(best_trial=str(best["number"]), best_command=best["command"])
        run.log_metrics({"best_trial_value": best["value"]})
        value = f"{best['value']:.2%}" if "accuracy" in summary["metric"] else f"{best['value']:.4f}"
        note += f" Best trial {best['number']}: {summary['metric']} {value}; train it alone with `{best['command']}`."
        trial_run = _trial_run(client, parent_run_id, summary["study"], best["number"], summary.get("storage"))
        if trial_run is not None:
            tags.update({TAG_BEST_RUN: trial_run.info.run_id, "best_job": trial_run.info.run_name or ""})
        if trial_run is not None and register_as:
            same_study = _holds_study(client, register_as, summary)
            registered = register_best(client, trial_run.info.run_id, register_as, only_if_better=not same_study)
            tags["registered_model"] = registered
            note += f" Registered: {registered}."
    previous = client.get_run(parent_run_id).data.tags.get(TAG_NOTE, "")
    run.set_tags({**tags, TAG_NOTE: previous + note})
    return summary


def _holds_study(client: MlflowClient, name: str, summary: dict[str, Any]) -> bool:
    """Whether ``name@best`` is unset or holds a trial of this search's study."""
    held = alias_run(client, name)
    if held is None:
        return True
    params = client.get_run(held).data.params
    return params.get("search.study") == summary["study"] and _same_storage(params, summary.get("storage"))


def _same_storage(params: dict[str, str], storage: Optional[str]) -> bool:
    """Whether a trial's run was of a study in ``storage`` (one study name may be in several storages: the same
    search command with another hydra.sweeper.storage or tracking store); unknown (older results) counts as same."""
    return storage is None or params.get("search.storage") == storage


def _trial_run(
    client: MlflowClient, parent_run_id: str, study: str, number: int, storage: Optional[str] = None
) -> Optional[MlflowRun]:
    """The FINISHED run of trial ``number`` of ``study`` in ``storage`` (under any search's parent), if the store
    holds one."""
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    found = client.search_runs(
        [experiment_id],
        filter_string=f"params.`search.study` = '{study}' and params.`search.trial` = '{number}' "
        "and attributes.status = 'FINISHED'",
        max_results=1000,
    )
    return next((run for run in found if _same_storage(run.data.params, storage)), None)
