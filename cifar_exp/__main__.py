"""``python -m cifar_exp [overrides]``: validate the composed config, then hand it to the trainer."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cifar_exp import signals
from cifar_exp.config import register, task_overrides
from cifar_exp.errors import CifarExpError, JobFailed, disk_full
from cifar_exp.preflight import composition_error, malformed_override
from cifar_exp.validation import validate

log = logging.getLogger(__name__)
register()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter; set 0 to see it


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    """Train one configuration; returns its test accuracy (the value sweepers optimise).

    A user error ends a single run with a one-paragraph message and exit status 2; inside a
    multirun it fails only its own job, so the sweep goes on.
    """
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    pool_worker = multiprocessing.parent_process() is not None  # a joblib launcher's worker process
    if signals.draining():  # a pool worker whose sweep was stopped: the jobs still queued are not started
        log.warning("job not started: the sweep was %s", signals.received)
        return None
    signals.install()  # here too: a joblib or Ray worker runs only this function
    if pool_worker:
        signals.watch_parent()
    try:
        validate(cfg)
        from cifar_exp.plan import JobContext, plan_job

        context = JobContext(
            overrides=task_overrides(hydra_cfg),
            sweep_dir=str(Path(hydra_cfg.sweep.dir).resolve()) if multirun else None,
            job_num=hydra_cfg.job.num if multirun else None,
        )
        if cfg.tracking.enabled:
            from cifar_exp.tracking import prepare_store

            prepare_store(cfg.tracking.uri, create=False)  # a bad store is said first; a new one waits for the data
        from cifar_exp.data import load_dataset

        data = load_dataset(**cfg.data)  # a missing or corrupt dataset (a second or two; no TensorFlow)
        job = plan_job(cfg, context, data.fingerprint)  # a refused resume too; skipped if FINISHED on this data
        from cifar_exp.train import train  # TensorFlow loads only once config, store, data and resume are good

        outcome = train(cfg, context, data, job)
        if not multirun:
            uri = cfg.tracking.uri if cfg.tracking.enabled else None
            print(_said(outcome.run_id, outcome.metrics, uri, cfg.tracking.experiment))
        return outcome.metrics["test_accuracy"]
    except CifarExpError as error:
        if multirun:
            raise JobFailed(str(error), hydra_cfg.job.num) from error
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        failure = _outside_failure(error, cfg.tracking.uri if cfg.tracking.enabled else None)
        if failure is None:
            raise
        if multirun:
            raise JobFailed(str(failure), hydra_cfg.job.num) from error
        print(f"error: {failure}", file=sys.stderr)
        sys.exit(2)
    except signals.Stopped as stop:
        if not pool_worker:
            raise
        # A pool worker (joblib): its run is recorded KILLED. Returned, not raised: an error coming back would make
        # joblib kill the other workers while they record their own runs' end.
        print(f"error: {stop.explain()}", file=sys.stderr)
        return None
    finally:
        if pool_worker:
            signals.note_only()


AFTERWARDS = (
    "the run is FAILED where the store could still be written (else the next command on the store marks it "
    "KILLED), its checkpoints are kept, and the same command with resume=auto continues it from its last "
    "complete epoch"
)


def _outside_failure(error: BaseException, uri: Optional[str]) -> Optional[CifarExpError]:
    """A failure of the machine or the store around the run, not of the run itself, as one paragraph: a full
    disk, or a tracking store that stopped answering or refused a write mid-run. None for anything else."""
    from cifar_exp.errors import store_failed, store_failure
    from cifar_exp.tracking.store import masked

    full = disk_full(error)
    if full is not None:
        where = "the run records"
        if isinstance(full, OSError) and (full.filename2 or full.filename):  # a copy's destination, else the file
            where = str(full.filename2 or full.filename)
        return CifarExpError(
            f"no space left on the device while writing {where}: free some space, or point "
            f"trainer.checkpoint_dir and tracking.uri at another disk; {AFTERWARDS}"
        )
    failed = store_failure(error)
    if failed is None or uri is None:
        return None
    return CifarExpError(
        store_failed(
            failed,
            masked(uri),
            f"{AFTERWARDS} once the store answers and can be written again",
            doing="while the run was being recorded",
        )
    )


def run() -> None:
    """The command line: overrides checked one by one, stop signals turned into a clean, recorded stop."""
    signals.install()
    bad = malformed_override(sys.argv[1:]) or composition_error(sys.argv[1:])
    if bad:
        print(f"error: {bad}", file=sys.stderr)
        sys.exit(2)
    try:
        main()
    except signals.Stopped as stop:
        print(f"error: {stop.explain()}", file=sys.stderr)
        signals.exit(stop.exit_status)
    if signals.received is not None:  # a sweep whose pool workers ended their jobs as stopped (signals.draining)
        print(f"error: {signals.received.explain()}", file=sys.stderr)
        signals.exit(signals.received.exit_status)
    signals.done()


def _said(run_id: Optional[str], metrics: dict[str, float], uri: Optional[str], experiment: str = "") -> str:
    """The run's result in one line, and where to look at it."""
    from cifar_exp.evaluate import accuracy_summary
    from cifar_exp.tracking import masked

    measured = accuracy_summary(metrics)
    if run_id is None or uri is None:
        return f"done: {measured} (tracking off: nothing logged)"
    return f"done: run {run_id}, {measured}; in {masked(uri)} (browse with: {_ui_command(uri, experiment)})"


def _ui_command(uri: str, experiment: str) -> str:
    """Where to see the run: a tracking server's own address; else the command that serves the MLflow UI on
    ``uri`` (the console script by the name the shell finds it by, its path where the environment is not
    activated), naming the store and the experiment where they are not the defaults."""
    import shlex
    import shutil

    from cifar_exp.config import default_experiment, default_store_uri
    from cifar_exp.tracking import masked

    if uri.startswith(("http://", "https://")):
        return masked(uri)
    script = Path(sys.executable).with_name("cifar-exp")
    on_path = shutil.which("cifar-exp")
    if on_path and Path(on_path).resolve() == script.resolve():
        command = ["cifar-exp", "ui"]
    elif script.is_relative_to(Path.cwd()):
        command = [str(script.relative_to(Path.cwd())), "ui"]
    else:
        command = [str(script), "ui"]
    if uri != default_store_uri():
        command += ["--backend-store-uri", masked(uri)]
    if experiment and experiment != default_experiment():
        command += ["--experiment", experiment]
    return shlex.join(command)


if __name__ == "__main__":
    run()
