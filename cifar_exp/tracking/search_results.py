"""A hyper-parameter search's results on its sweep parent run: what the ``optuna`` sweeper wrote to
``<sweep dir>/optuna/`` (the best trial with its command line, every trial as a table, Optuna's plots)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cifar_exp.tracking.run import TAG_NOTE, Run
from cifar_exp.tracking.store import client_for


def record_search(uri: str, parent_run_id: str, folder: Path) -> dict[str, Any]:
    """Log the search results in ``folder`` on the parent: artifacts under ``optuna/``, tags ``study``,
    ``best_trial``, ``best_command``, metric ``best_trial_value``, and a sentence in its description; nothing when
    the sweep was not a search."""
    summary_file = folder / "best_trial.yaml"
    if not summary_file.exists():
        return {}
    summary: dict[str, Any] = yaml.safe_load(summary_file.read_text())
    client = client_for(uri)
    run = Run(client, parent_run_id)
    run.log_artifacts(folder, "optuna")
    counts = ", ".join(f"{n} {state}" for state, n in summary["trials"].items() if n)
    tags = {"study": summary["study"], "search_trials": counts}
    note = f" Optuna study **{summary['study']}**: {counts}."
    best = summary.get("best")
    if best:
        tags.update(best_trial=str(best["number"]), best_command=best["command"])
        run.log_metrics({"best_trial_value": best["value"]})
        note += (
            f" Best trial {best['number']}: {summary['metric']} {best['value']:.2%}; "
            f"train it alone with `{best['command']}`."
        )
    previous = client.get_run(parent_run_id).data.tags.get(TAG_NOTE, "")
    run.set_tags({**tags, TAG_NOTE: previous + note})
    return summary
