"""Runs left RUNNING by a process that is gone (``kill -9``, out of memory, a full disk that let nothing be
written): every command that opens the store closes those of its host, saying why."""

from __future__ import annotations

import logging
import socket

from mlflow.tracking import MlflowClient

from cifar_exp.errors import briefly
from cifar_exp.tracking.environment import command_line, is_stale
from cifar_exp.tracking.run import TAG_ROLE, mark_killed
from cifar_exp.tracking.sweep_parent import close_sweep_parent

log = logging.getLogger(__name__)


def retire_dead_runs(client: MlflowClient) -> list[str]:
    """Mark every RUNNING run in the store (any experiment) whose process on this host is gone as KILLED (a sweep
    parent with the summary of its jobs); returns their ids."""
    experiments = [e.experiment_id for e in client.search_experiments(max_results=50000)]
    if not experiments:
        return []
    mine = f"attributes.status = 'RUNNING' and tags.host = '{socket.gethostname()}'"
    running = client.search_runs(experiments, filter_string=mine, max_results=50000)
    retired = []
    for run in running:
        if not is_stale(run):
            continue
        reason = (
            f"process {run.data.tags.get('pid')} on {run.data.tags.get('host')} died while RUNNING (killed with "
            f"-9, out of memory, or unable to write its end); noticed by: {command_line()}"
        )
        try:
            if run.data.tags.get(TAG_ROLE) == "sweep":
                close_sweep_parent(client.tracking_uri, run.info.run_id, ended="KILLED", reason=reason)
            else:
                mark_killed(client, run.info.run_id, reason)
        except Exception as error:  # a store that can be read but not written: the work itself will say so
            log.warning("could not retire the dead run %s (%s); left RUNNING", run.info.run_id, briefly(error))
            break
        retired.append(run.info.run_id)
    return retired
