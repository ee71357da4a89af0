"""The Hydra callback that makes a multirun one MLflow parent run (see :mod:`cifar_exp.tracking.sweep_parent`)
with a child run per job.

Configured in ``conf/config.yaml`` under ``hydra.callbacks``. The parent is created before the first
job (which also creates the store's schema, so parallel jobs do not race on it) and tagged with the
sweep directory; each job finds it by that tag, which works for in-process, joblib, Ray and SLURM
jobs alike as long as they share the tracking store. The parent is closed after the last job with a
summary, or at interpreter exit when a failed job made Hydra abort before ``on_multirun_end``.
"""

from __future__ import annotations

import atexit
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from cifar_exp import errors, signals, tracking
from cifar_exp.config import register, task_overrides
from cifar_exp.errors import ConfigError
from cifar_exp.preflight import check_jobs
from cifar_exp.search import RESULTS_DIR
from cifar_exp.tracking.search_results import record_search

log = logging.getLogger(__name__)


def sweep_name(cfg: DictConfig) -> str:
    """The parent run's name: the report experiment, the search space (``search-fast_cnn``), else the swept keys
    (``sweep-dropout``)."""
    if cfg.get("experiment"):
        return f"sweep-{cfg.experiment}"
    if OmegaConf.select(cfg, "hydra.runtime.choices.search"):
        return f"search-{cfg.hydra.runtime.choices.search}"
    overrides = OverridesParser.create().parse_overrides(task_overrides(cfg.hydra))
    swept = [o.key_or_group for o in overrides if o.is_sweep_override()]
    return "-".join(["search" if is_search_config(cfg) else "sweep", *swept])


def is_search_config(cfg: DictConfig) -> bool:
    """Whether the multirun is an Optuna search (``hydra/sweeper=optuna``) rather than a grid sweep."""
    return OmegaConf.select(cfg, "hydra.runtime.choices", default={}).get("hydra/sweeper") == "optuna"


def registered_name(cfg: DictConfig) -> str | None:
    """``tracking.register_as`` with ``{experiment}`` and ``{sweep}`` filled in, e.g. ``cifar_exp-sweep-decay``."""
    template = cfg.tracking.get("register_as")
    if not template:
        return None
    try:
        return template.format(experiment=cfg.tracking.experiment, sweep=sweep_name(cfg))
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(
            f"tracking.register_as={template!r} cannot be filled in ({type(error).__name__}: {error}); "
            "it may use {experiment} and {sweep}, e.g. '{experiment}-{sweep}', or be null."
        ) from error


def prepare_store_and_check_folder(uri: str, experiment: str, sweep_dir: str) -> None:
    """The store is usable, and no live sweep writes to this sweep's folder (with an explicit ``hydra.sweep.dir``
    two sweeps can share one, and each job finds its parent by that folder)."""
    tracking.prepare_store(uri)
    other = tracking.live_sweep_parent(uri, experiment, sweep_dir)
    if other is not None:
        raise ConfigError(
            f"hydra.sweep.dir={sweep_dir} is the folder of {other.info.run_name} (run {other.info.run_id}, pid "
            f"{other.data.tags.get('pid')}), which is still running: each sweep needs a folder of its own, since its "
            "jobs find their parent run by it. Leave hydra.sweep.dir at its default (new for every sweep) or give "
            "another; nothing was started."
        )


class MlflowSweepCallback(Callback):
    """Opens the sweep's parent run before its jobs and closes it with a summary after them."""

    def __init__(self) -> None:
        register()
        self.parent_run_id: str | None = None
        self.store_failed = False  # a failure could not be recorded on the parent: the store is not answering
        self.uri: str | None = None
        self.sweep_dir: Path | None = None
        self.register_as: str | None = None
        self.search = False  # the Optuna sweeper: its trials are not continued, its best is the study's
        self.records: str | None = None  # tracking.records: where the parent's record goes once it is closed

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        signals.install()
        try:
            check_jobs(config)
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        if not config.tracking.enabled:
            return
        self.uri = config.tracking.uri
        self.register_as = registered_name(config)
        self.records = config.tracking.get("records")
        self.search = is_search_config(config)
        self.sweep_dir = Path(config.hydra.sweep.dir).resolve()
        sweep_dir = str(self.sweep_dir)  # unique per sweep: see hydra.sweep.dir
        launcher = str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1]  # e.g. RayLauncher
        try:
            prepare_store_and_check_folder(self.uri, config.tracking.experiment, sweep_dir)
            self.parent_run_id = tracking.open_sweep_parent(
                self.uri,
                config.tracking.experiment,
                sweep_dir,
                sweep_name(config),
                task_overrides(config.hydra),
                launcher,
            )
            tracking.retire_dead_runs(tracking.client_for(self.uri))
        except Exception as error:  # Hydra would turn it into a warning and run the jobs without a parent
            message = (
                error
                if isinstance(error, errors.CifarExpError)
                else f"the sweep's parent run could not be "
                f"created in {self.uri} ({type(error).__name__}: {str(error).strip().splitlines()[0]})"
            )
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
        log.info("MLflow sweep parent run %s (%s)", self.parent_run_id, sweep_name(config))
        atexit.register(self._close, at_exit=True)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """A failed job is said at once (Hydra itself raises only the first failure, after the last job) and
        recorded on the parent, so one that failed before its run existed still counts in the summary. Runs in
        the job's own process, whatever the launcher."""
        if job_return.status != JobStatus.FAILED or OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
            return
        error = job_return._return_value
        if isinstance(error, errors.JobFailed):
            said = error.said
        else:
            said = str(error) if isinstance(error, errors.CifarExpError) else f"{type(error).__name__}: {error}"
        said = " ".join(said.split())
        overrides = task_overrides(config.hydra)
        print(f"error: job #{config.hydra.job.num} ({' '.join(overrides)}) failed: {said}", file=sys.stderr)
        by_the_store = errors.store_failure(error) is not None  # a failed store check too: it names the requests error
        if not config.tracking.enabled or by_the_store or self.store_failed:
            return  # the store failed this job or an earlier record: each try would wait out its retries
        sweep_dir = str(Path(config.hydra.sweep.dir).resolve())
        try:
            parent = tracking.find_sweep_parent(config.tracking.uri, config.tracking.experiment, sweep_dir)
            if parent:
                tracking.note_failed_job(config.tracking.uri, parent, config.hydra.job.num, overrides, said)
        except Exception as unrecorded:  # the store itself may be what failed the job
            self.store_failed = True
            log.warning(
                "job #%s's failure could not be recorded on its sweep: %s",
                config.hydra.job.num,
                errors.briefly(unrecorded),
            )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._close()

    def _close(self, at_exit: bool = False) -> None:
        """Close the parent with its summary, once (after the last job, else at exit: Hydra raised before
        ``on_multirun_end``, on a failed job or on an error outside the jobs); a store that cannot take it is said
        in one line: the next command on the store closes the parent then."""
        if self.parent_run_id is None or self.uri is None or self.sweep_dir is None:
            return
        parent_run_id, self.parent_run_id = self.parent_run_id, None
        stop = signals.received
        results = self.sweep_dir / RESULTS_DIR
        search = self.search  # a search registers the study's best trial, not the best test accuracy
        try:
            summary = tracking.close_sweep_parent(
                self.uri,
                parent_run_id,
                None if stop or search else self.register_as,
                ended="KILLED" if stop else None,
                reason=f"the sweep was {stop}" if stop else "",
                search=search,
                aborted=at_exit,
            )
        except Exception as error:  # raised here it would be a traceback at exit, after the jobs' own messages
            print(
                f"error: the sweep's parent run {parent_run_id} could not be closed in {tracking.masked(self.uri)} "
                f"({errors.briefly(error)[:400]}); the next command on this store closes it.",
                file=sys.stderr,
            )
            return
        if summary:
            log.info("sweep summary: %s", summary)
            record_search(self.uri, parent_run_id, results, None if stop else self.register_as)
        if self.records:
            tracking.keep_record(self.uri, parent_run_id, self.records)
