"""Addresses in the MLflow UI (3.17's hash routes): an experiment's runs table in the model-training view, and the
compare view of a sweep's jobs. MLflow 3 opens on its GenAI view unless the URL says ``workflowType=machine_learning``
(the UI then remembers that choice in the browser)."""

from __future__ import annotations

import json
from typing import Sequence
from urllib.parse import quote

from mlflow.tracking import MlflowClient

from cifar_exp.tracking.run import TAG_ROLE
from cifar_exp.tracking.sweep_parent import sweep_children

ML_VIEW = "workflowType=machine_learning"


def runs_table_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table, in the model-training view."""
    return f"{base}/#/experiments/{experiment_id}/runs?{ML_VIEW}"


def experiments_url(base: str) -> str:
    """The list of experiments, in the model-training view."""
    return f"{base}/#/experiments?{ML_VIEW}"


def compare_url(base: str, experiment_id: str, run_ids: Sequence[str]) -> str:
    """The compare view of these runs: params side by side, metrics, curves."""

    def param(values: Sequence[str]) -> str:
        return quote(json.dumps(list(values), separators=(",", ":")), safe="")

    return f"{base}/#/compare-runs?runs={param(run_ids)}&experiments={param([experiment_id])}&{ML_VIEW}"


def landing(base: str, client: MlflowClient, experiment: str) -> list[str]:
    """What ``cifar-exp ui`` prints: where the runs are, and how to compare a sweep's jobs (with the newest
    sweep's compare view, where the store holds one)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return [f"Experiments (no run in '{experiment}' yet): {experiments_url(base)}"]
    lines = [
        f"Runs of '{experiment}': {runs_table_url(base, found.experiment_id)}",
        "Compare a sweep's jobs: in the runs table expand its parent run (sweep-...), tick its children and "
        "press Compare.",
    ]
    sweeps = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{TAG_ROLE}` = 'sweep'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if sweeps:
        parent = sweeps[0]
        children = sweep_children(client, parent)
        if len(children) > 1:
            ids = [c.info.run_id for c in sorted(children, key=lambda c: c.info.run_name or "")]
            lines.append(
                f"Newest sweep ({parent.info.run_name}, {len(ids)} jobs) compared: "
                f"{compare_url(base, found.experiment_id, ids)}"
            )
    return lines
