"""Everything MLflow, behind a narrow face: :func:`start_job` plans a job against the store (start, resume
or skip) and :meth:`Job.open` owns its run's end status; :func:`describe_run` and :func:`record_results`
record what a run is and what it measured. Store checks, environment tags, dataset inputs, the logged MLflow
Model, the model registry and the sweep parent each have a module of their own.

All calls go through :class:`mlflow.MlflowClient` with an explicit run id, so no module-level "active
run" leaks between the jobs that Hydra's basic launcher runs one after another in one process.
"""

from cifar_exp.tracking.datasets import data_source, dataset_inputs, log_dataset_inputs
from cifar_exp.tracking.environment import environment_tags, is_stale, process_tags
from cifar_exp.tracking.job import Job, start_job
from cifar_exp.tracking.logged_model import log_keras_model
from cifar_exp.tracking.record_export import keep_record
from cifar_exp.tracking.results import (
    describe_run,
    flatten,
    log_figures_and_tables,
    log_linked_metrics,
    record_results,
)
from cifar_exp.tracking.resume import runs_of_config
from cifar_exp.tracking.run import TAG_NOTE, TAG_ROLE, Run, mark_killed, tracked_run
from cifar_exp.tracking.stale import retire_dead_runs
from cifar_exp.tracking.store import client_for, experiment_id, masked
from cifar_exp.tracking.store_checks import prepare_store
from cifar_exp.tracking.sweep_parent import (
    TAG_JOB_NUM,
    TAG_SWEEP,
    close_sweep_parent,
    find_sweep_parent,
    live_sweep_parent,
    note_failed_job,
    note_skipped_job,
    open_sweep_parent,
    report_experiment,
    skipped_runs,
    sweep_children,
)

__all__ = [
    "TAG_NOTE",
    "TAG_ROLE",
    "TAG_JOB_NUM",
    "TAG_SWEEP",
    "Job",
    "Run",
    "client_for",
    "close_sweep_parent",
    "data_source",
    "dataset_inputs",
    "describe_run",
    "environment_tags",
    "experiment_id",
    "find_sweep_parent",
    "flatten",
    "is_stale",
    "keep_record",
    "live_sweep_parent",
    "log_dataset_inputs",
    "log_figures_and_tables",
    "log_keras_model",
    "log_linked_metrics",
    "mark_killed",
    "note_failed_job",
    "note_skipped_job",
    "open_sweep_parent",
    "report_experiment",
    "skipped_runs",
    "sweep_children",
    "masked",
    "prepare_store",
    "process_tags",
    "record_results",
    "retire_dead_runs",
    "runs_of_config",
    "start_job",
    "tracked_run",
]
