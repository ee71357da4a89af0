"""The optuna sweeper's work: the search space from Hydra's sweep syntax, the ask / launch / tell loop, and the
study's results written to ``<sweep dir>/optuna/``.

Each job gets ``search.study``, ``search.storage`` and ``search.trial`` overrides; it reports its ``metric`` every
epoch to that trial and stops when the pruner says so (:mod:`cifar_exp.search`). A trial is judged by the last value
it reported, so the study sees the validation metric and never the test set; the job's return value (its test
accuracy) is kept as the trial's user attribute ``test_accuracy`` and serves only a job that reported nothing.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import shlex
import shutil
import warnings
from pathlib import Path
from typing import Any, Optional, cast

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import OverrideParseException
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.study import StudyDirection
from optuna.trial import TrialState

from cifar_exp import signals
from cifar_exp.identity import LOCATION, is_bookkeeping
from cifar_exp.search import CHECKPOINT_ATTR, FIXED_ATTR, METRIC_ATTR, PRUNED_ATTR, PRUNER_ATTR, open_storage
from cifar_exp.tracking.environment import process_gone, process_tags

log = logging.getLogger(__name__)
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
OWNERLESS_AFTER = datetime.timedelta(hours=1)  # a RUNNING trial without an owner this old was cut off from it
OWNER_ATTR = "sweeper"  # trial user attribute: the process that asked for it (host, pid, when it started)
RESULTS_DIR = "optuna"


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of a sweep override: ``choice`` and shuffled ``range`` are categorical, ``range`` an
    int (or float) grid with Hydra's exclusive stop, ``interval`` a float range (``tag(log, ...)``: log-uniform,
    ``tag(int, ...)``: integers)."""
    value = override.value()
    tags = set(getattr(value, "tags", None) or ())
    allowed = {"log", "int"} if isinstance(value, IntervalSweep) else set()
    if tags - allowed:  # a typo such as tag(lg, ...) would otherwise draw uniformly without a word
        raise ValueError(
            f"tag({', '.join(sorted(tags - allowed))}, ...) is not understood here: "
            + ("an interval takes tag(log, ...) and tag(int, ...)" if allowed else "only an interval takes tags")
        )
    values: list[Any] = (
        list(override.sweep_iterator(transformer=Transformer.encode)) if not isinstance(value, IntervalSweep) else []
    )
    if isinstance(value, IntervalSweep):
        low: Any = value.start
        high: Any = value.end
        if "int" in value.tags:  # the whole numbers inside the interval, not its ends cut to whole numbers
            if math.ceil(low) > math.floor(high):
                raise ValueError(f"tag(int, interval({low}, {high})) holds no whole number")
            return IntDistribution(math.ceil(low), math.floor(high), log="log" in value.tags)
        return FloatDistribution(float(low), float(high), log="log" in value.tags)
    if isinstance(value, RangeSweep) and not value.shuffle:
        start: Any = value.start
        step: Any = value.step
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return IntDistribution(int(start), int(values[-1]), step=int(step))
        return FloatDistribution(float(start), float(values[-1]), step=float(step))
    return CategoricalDistribution(tuple(values))


def search_space(overrides: list[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """The swept overrides as distributions (by key, ``+`` kept) and the fixed ones as they were written; a later
    override of a key wins."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = override.input_line or f"{key}={override.get_value_element_as_str()}"
    return space, list(fixed.values())


# The epoch logs a trial can report, and the direction each is optimised in (the test set is never one of them).
METRICS = {"val_accuracy": "maximize", "val_loss": "minimize", "accuracy": "maximize", "loss": "minimize"}


def settings_problems(sweeper: DictConfig) -> list[str]:
    """What is wrong with the sweeper's own settings (``hydra.sweeper.*``), each said with its fix."""
    said = []
    metric, direction = sweeper.get("metric"), str(sweeper.get("direction")).lower()
    if metric not in METRICS:
        said.append(f"hydra.sweeper.metric={metric} is not an epoch log a trial reports: one of {', '.join(METRICS)}")
    elif direction != METRICS[metric]:
        said.append(
            f"hydra.sweeper.direction={sweeper.get('direction')} for {metric}, which is a "
            f"{'loss' if METRICS[metric] == 'minimize' else 'score'}: set hydra.sweeper.direction={METRICS[metric]}"
        )
    if not isinstance(sweeper.get("n_trials"), int) or sweeper.n_trials < 1:
        said.append(f"hydra.sweeper.n_trials={sweeper.get('n_trials')}: give the number of trials to finish, 1 or more")
    if not isinstance(sweeper.get("n_jobs"), int) or sweeper.n_jobs < 1:
        said.append(f"hydra.sweeper.n_jobs={sweeper.get('n_jobs')}: give the number of trials to run at once, 1 or up")
    rate = sweeper.get("max_failure_rate")
    if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        said.append(
            f"hydra.sweeper.max_failure_rate={rate}: give a share from 0 (stop at the first failed trial) up to, "
            "not including, 1 (a search whose trials all fail must still stop)"
        )
    factor = OmegaConf.select(sweeper, "pruner.reduction_factor")
    if factor is not None and factor < 2:  # Optuna accepts it, then divides by log(1) at the first pruning decision
        said.append(f"hydra.sweeper.pruner.reduction_factor={factor}: give 2 or more (3 is Hyperband's default)")
    for part in ("sampler", "pruner"):
        try:
            instantiate(OmegaConf.to_container(sweeper.get(part), resolve=True))
        except Exception as error:  # noqa: BLE001 (whatever Optuna refuses, said as the setting it came from)
            said.append(f"hydra.sweeper.{part} cannot be made ({type(error).__name__}: {' '.join(str(error).split())})")
    return said


def space_problems(overrides: list[str]) -> tuple[list[str], list[list[str]]]:
    """What is wrong with the search space's distributions, and the points that stand for it (every setting at each
    end of its range, each choice): composed and validated before any trial starts."""
    said, points, parser = [], [], OverridesParser.create()
    for line in overrides:
        try:
            (override,) = parser.parse_overrides([line])
        except OverrideParseException as error:
            said.append(f"{line}: {' '.join(str(error).split())}")
            continue
        if not override.is_sweep_override():
            continue
        key = override.get_key_element()
        try:
            found = distribution(override)
        except (ValueError, IndexError, TypeError) as error:
            said.append(f"{override.input_line}: not a search range Optuna can draw from ({error or 'empty'})")
            continue
        if isinstance(found, (FloatDistribution, IntDistribution)):
            values: list[Any] = [found.low, found.high]
        else:
            values = list(cast(CategoricalDistribution, found).choices)
        points += [[f"{key}={format_value(value)}"] for value in values]
    return said, points


def format_value(value: Any) -> str:
    """A parameter value as Hydra's override grammar reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value) if isinstance(value, float) else str(value)


def quote(value: str) -> str:
    """A string value quoted for Hydra's override grammar (paths and URLs hold ':' and '/')."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


DEFAULT_OBJECTIVE = ("val_accuracy", "maximize")


def default_study_name(
    space: dict[str, BaseDistribution], fixed: list[str], config: DictConfig, objective: tuple[str, str]
) -> str:
    """``<search space name>-<hash>``: the same command continues the same study; another space, other fixed
    settings (bookkeeping such as tracking or verbosity aside) or another ``objective`` (metric, direction) start
    another (the default objective leaves the hash as it was before it counted, so those studies continue)."""
    choice = OmegaConf.select(config, "hydra.runtime.choices.search") or "search"
    kept = sorted(o for o in fixed if not is_bookkeeping(o.lstrip("+~").split("=", 1)[0]))
    parts: list[Any] = [{k: optuna.distributions.distribution_to_json(d) for k, d in sorted(space.items())}, kept]
    if objective != DEFAULT_OBJECTIVE:
        parts.append(list(objective))
    text = json.dumps(parts)
    return f"{choice}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def fixed_settings(config: DictConfig, space: dict[str, BaseDistribution]) -> dict[str, str]:
    """Every setting a trial trains with that the search does not draw, as ``{dotted key: JSON value}``: what the
    search file and the command line fix (epochs, model, optimizer...), bookkeeping, where the data lies and the
    trial links aside. A study continued under other fixed settings would rank trials that are not comparable."""
    container = OmegaConf.to_container(config, resolve=False)
    assert isinstance(container, dict)
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = json.dumps(value, sort_keys=True)

    walk("", {k: v for k, v in container.items() if k not in ("hydra", "search")})
    drawn = tuple(space)
    return {
        key: value
        for key, value in flat.items()
        if not is_bookkeeping(key) and key != LOCATION and not any(key == d or key.startswith(f"{d}.") for d in drawn)
    }


def study_name_for(
    sweeper: DictConfig, config: DictConfig, space: dict[str, BaseDistribution], fixed: list[str]
) -> str:
    """The study this search runs: ``hydra.sweeper.study_name``, else :func:`default_study_name`."""
    objective = (str(sweeper.get("metric")), str(sweeper.get("direction")).lower())
    return sweeper.get("study_name") or default_study_name(space, fixed, config, objective)


def study_problems(
    storage: optuna.storages.BaseStorage,
    name: str,
    space: dict[str, BaseDistribution],
    metric: str,
    direction: str,
    fixed: Optional[dict[str, str]] = None,
) -> list[str]:
    """What keeps this search from continuing the existing study ``name`` (nothing if there is none): a study made
    for another objective (Optuna keeps the study's own direction, so the best trial would be the worst), other
    ``fixed`` settings than the study's trials ran with (an edited search file: 1-epoch and 3-epoch trials ranked
    together), or a parameter drawn from a distribution Optuna refuses to mix with the study's (another kind, log or
    not, other choices), which would fail the first trial asked after the search's parent run exists."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return []
    said = []
    (stored_direction,) = storage.get_study_directions(study_id)
    attrs = storage.get_study_user_attrs(study_id)
    stored_metric = attrs.get(METRIC_ATTR, DEFAULT_OBJECTIVE[0])
    stored_fixed = attrs.get(FIXED_ATTR)
    if fixed is not None and stored_fixed is not None and stored_fixed != fixed:
        keys = sorted(k for k in {*fixed, *stored_fixed} if fixed.get(k) != stored_fixed.get(k))
        shown = "; ".join(
            f"{k}: {stored_fixed.get(k, '(unset)')} there, {fixed.get(k, '(unset)')} here" for k in keys[:4]
        )
        more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
        said.append(
            f"the study {name} ran its trials with other fixed settings ({shown}{more}): its trials and this search's "
            "would not be comparable; give the study's settings again, or another hydra.sweeper.study_name"
        )
    if stored_metric != metric or stored_direction.name.lower() != direction.lower():
        said.append(
            f"the study {name} judges its trials by {stored_metric} ({stored_direction.name.lower()}), not by "
            f"{metric} ({direction.lower()}): give another hydra.sweeper.study_name for this objective"
        )
    for trial in storage.get_all_trials(study_id, deepcopy=False):
        for key, stored in trial.distributions.items():
            if key not in space:
                continue
            try:
                optuna.distributions.check_distribution_compatibility(stored, space[key])
            except ValueError:
                said.append(
                    f"the study {name} drew {key} from {stored}, which Optuna cannot continue with {space[key]}: "
                    "give the study's range again, or another hydra.sweeper.study_name"
                )
                space = {k: v for k, v in space.items() if k != key}  # said once
    return said


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
        pruner = OmegaConf.to_container(self.pruner_cfg, resolve=True) if self.pruner_cfg else None
        storage = open_storage(self.storage)
        name = study_name_for(self.config.hydra.sweeper, self.config, space, fixed)
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
    OmegaConf.save(OmegaConf.create(summary), folder / "best_trial.yaml")
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
