"""The optuna sweeper's work: the ask / launch / tell loop over the study (the space: :mod:`.space`; which study and
whether it may go on: :mod:`.study`; its results in ``<sweep dir>/optuna/``: :mod:`.results`).

Each job gets ``search.study``, ``search.storage`` and ``search.trial`` overrides; it reports its ``metric`` every
epoch to that trial and stops when the pruner says so (:mod:`cifar_exp.search`). A trial is judged by the last value
it reported, so the study sees the validation metric and never the test set; the job's return value (its test
accuracy) is kept as the trial's user attribute ``test_accuracy`` and serves only a job that reported nothing.
"""

from __future__ import annotations

import datetime
import logging
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState

from cifar_exp import signals
from cifar_exp.search import (
    CHECKPOINT_ATTR,
    FIXED_ATTR,
    METRIC_ATTR,
    PRUNED_ATTR,
    PRUNER_ATTR,
    RESULTS_DIR,
    open_storage,
)
from cifar_exp.tracking.environment import process_gone, process_tags
from hydra_plugins.cifar_exp_optuna.results import write_results
from hydra_plugins.cifar_exp_optuna.space import format_value, quote, search_space
from hydra_plugins.cifar_exp_optuna.study import fixed_settings, study_name_for

log = logging.getLogger(__name__)
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
OWNERLESS_AFTER = datetime.timedelta(hours=1)  # a RUNNING trial without an owner this old was cut off from it
OWNER_ATTR = "sweeper"  # trial user attribute: the process that asked for it (host, pid, when it started)


class OptunaSweeperImpl:
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
        self.sampler_cfg, self.pruner_cfg = sampler, pruner
        self.study_name, self.storage, self.direction, self.metric = study_name, storage, direction, metric
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, max(n_jobs, 1), max_failure_rate
        self.params = params
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        given: dict[str, Any] = dict(self.params or {})
        params = [f"{key}={value}" for key, value in given.items()]
        space, fixed = search_space(params + list(arguments))
        if not space:
            raise ValueError(
                "hydra/sweeper=optuna needs a search space: +search=<space> (conf/search/) or sweep "
                "overrides such as 'optimizer.lr=tag(log,interval(1e-4,1e-1))'"
            )
        if not self.storage:
            raise ValueError(
                "hydra.sweeper.storage is empty: the jobs need a storage they share with the sweeper "
                "(a database URL or a journal file path)"
            )
        study = self._open_study(open_storage(self.storage), space, fixed)
        log.info(
            "Optuna study %s in %s: %d of %d trials finished",
            study.study_name,
            self.storage,
            self._finished(study),
            self.n_trials,
        )
        launched = failed = 0
        first_failure: Optional[JobReturn] = None
        while (missing := self.n_trials - self._taken(study)) > 0:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, missing))]
            returns = self._launch(study, trials, fixed)
            launched += len(returns)
            failed += sum(self._tell(study, trial, result) for trial, result in zip(trials, returns))
            first_failure = first_failure or next((r for r in returns if r.status == JobStatus.FAILED), None)
            # Against the trials asked for, not those launched so far: a first failure must not end a search that
            # tolerates failures, and a search whose trials all fail still ends (the rate is below 1).
            if failed > self.max_failure_rate * self.n_trials:
                log.error(
                    "%d trials failed, more than hydra.sweeper.max_failure_rate=%g of the %d asked for: stopping the "
                    "search",
                    failed,
                    self.max_failure_rate,
                    self.n_trials,
                )
                break
        others = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        running = sum(OWNER_ATTR in trial.user_attrs for trial in others)  # an owner-less one nobody runs: _taken
        if running:
            log.info("%d more trial(s) of the study are being run by another search on it", running)
        write_results(study, fixed, Path(self.config.hydra.sweep.dir) / RESULTS_DIR, self.metric, str(self.storage))
        if first_failure is not None:  # the search finished, but as a grid sweep does, it exits non-zero
            log.error("%d of %d trials failed (each said above); the search's parent run lists them", failed, launched)
            first_failure.return_value  # re-raises the first failed trial's error, as Hydra does for a grid sweep

    def _open_study(
        self, storage: optuna.storages.BaseStorage, space: dict[str, BaseDistribution], fixed: list[str]
    ) -> optuna.Study:
        """The search's study, created or continued, with what a later search on it checks (pruner, metric, the
        trials' fixed settings); trials a dead search left RUNNING are failed first."""
        pruner = OmegaConf.to_container(self.pruner_cfg, resolve=True) if self.pruner_cfg else None
        name = study_name_for(self.config.hydra.sweeper, self.config, space, fixed, storage)
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=self._sampler(storage, name),
            pruner=instantiate(pruner) if pruner else None,
            direction=StudyDirection[self.direction.upper()],
            load_if_exists=True,
        )
        study.set_user_attr(PRUNER_ATTR, pruner)
        study.set_user_attr(METRIC_ATTR, self.metric)
        if FIXED_ATTR not in study.user_attrs:  # checked before a later search continues the study
            # The config a trial composes (the space's own fixed entries in hydra.sweeper.params included), not the
            # sweep's: a fixed trainer.epochs there reaches the jobs only.
            trained = self.hydra_context.config_loader.load_sweep_config(self.config, list(fixed))
            study.set_user_attr(FIXED_ATTR, fixed_settings(trained, space))
        self._fail_orphans(study)
        return study

    def _launch(self, study: optuna.Study, trials: list[optuna.Trial], fixed: list[str]) -> Sequence[JobReturn]:
        """Launch one job per trial; a stop or a failing launcher ends the trials FAILED, none left RUNNING."""
        try:
            for trial in trials:
                trial.set_user_attr(OWNER_ATTR, process_tags())
            returns = self.launcher.launch(
                [self._overrides(study, trial, fixed) for trial in trials], initial_job_idx=self.job_idx
            )
        except signals.Stopped:  # a job in this process was stopped (the basic launcher): its trial ends too
            with signals.deferred():
                for trial in trials:
                    study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception:  # the launcher or the storage failed (a full disk): no trial of it is left RUNNING
            self._fail_quietly(study, trials)
            raise
        self.job_idx += len(returns)
        if signals.received is not None:  # the workers ended their trials as stopped (signals.draining)
            for trial in trials:
                study.tell(trial, state=TrialState.FAIL)
            raise signals.received
        return returns

    def _sampler(self, storage: optuna.storages.BaseStorage, study_name: str) -> optuna.samplers.BaseSampler:
        """The configured sampler; a seeded one is seeded with ``seed`` + the trials the study already has, so a
        seeded search is reproducible and its continuation does not repeat the first trials' parameters."""
        try:
            existing = len(storage.get_all_trials(storage.get_study_id_from_name(study_name), deepcopy=False))
        except KeyError:
            existing = 0
        seed = self.sampler_cfg.get("seed")
        return instantiate(self.sampler_cfg, **({"seed": seed + existing} if seed is not None else {}))

    @staticmethod
    def _fail_quietly(study: optuna.Study, trials: list[optuna.Trial]) -> None:
        """Fail the trials a search that is failing itself asked for, where the storage still takes it (what failed
        may be the storage: the next search fails what is left, as for a killed search)."""
        with signals.deferred():
            for trial in trials:
                try:
                    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                except Exception as error:  # noqa: BLE001 (the error being raised is the one to say)
                    log.warning("trial %d could not be marked FAILED (%s)", trial.number, error)

    @staticmethod
    def _fail_orphans(study: optuna.Study) -> None:
        """Trials left RUNNING by a search whose process is gone (``kill -9``, a crash): FAILED, so the study's
        counts and best trial do not wait on them, and their checkpoints removed (a trial is never continued). A
        live search's trials (two searches on one study) are left. A trial that never got its owner (the write
        after Optuna's ask failed: a full disk) is failed once it is older than :data:`OWNERLESS_AFTER`, where a
        search's own trial has had its owner for long."""
        now = datetime.datetime.now()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = trial.user_attrs.get(OWNER_ATTR)
            started = trial.datetime_start or now
            if (owner and process_gone(owner)) or (not owner and now - started > OWNERLESS_AFTER):
                log.warning("trial %d was left RUNNING by a search that died: marked FAILED", trial.number)
                study.tell(trial.number, state=TrialState.FAIL)
                if trial.user_attrs.get(CHECKPOINT_ATTR):
                    shutil.rmtree(trial.user_attrs[CHECKPOINT_ATTR], ignore_errors=True)

    @classmethod
    def _taken(cls, study: optuna.Study) -> int:
        """Trials that count toward ``n_trials``: the finished ones and those another live search on the study runs
        now (this one's are all told when it asks), so that searches sharing a study, on one machine or several,
        train ``n_trials`` in all rather than each; a search that died meanwhile gives its trials back."""
        cls._fail_orphans(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        # A trial without an owner was asked by some other client, or by a search killed before it said it was
        # its: nobody will finish it, so it must not hold back the study's n_trials.
        return cls._finished(study) + sum(OWNER_ATTR in trial.user_attrs for trial in running)

    @staticmethod
    def _finished(study: optuna.Study) -> int:
        return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))

    def _overrides(self, study: optuna.Study, trial: optuna.Trial, fixed: list[str]) -> list[str]:
        chosen = [f"{key}={format_value(value)}" for key, value in trial.params.items()]
        link = [
            f"search.study={quote(study.study_name)}",
            f"search.storage={quote(str(self.storage))}",
            f"search.trial={trial.number}",
        ]
        return [*fixed, *chosen, *link]

    def _tell(self, study: optuna.Study, trial: optuna.Trial, result: JobReturn) -> bool:
        """Tell the study how the trial's job ended; True if it failed."""
        if result.status != JobStatus.COMPLETED:
            log.warning("trial %d failed: %r", trial.number, getattr(result, "_return_value", None))
            study.tell(trial, state=TrialState.FAIL)
            return True
        if result.return_value is not None:
            trial.set_user_attr("test_accuracy", float(result.return_value))
        (frozen,) = (t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        if PRUNED_ATTR in frozen.user_attrs:
            study.tell(trial, state=TrialState.PRUNED)  # Optuna records the last reported value
            log.info("trial %d pruned after epoch %d", trial.number, frozen.user_attrs[PRUNED_ATTR])
        elif frozen.intermediate_values:
            study.tell(trial, frozen.intermediate_values[max(frozen.intermediate_values)])
        else:
            study.tell(trial, float(result.return_value))
        return False
