"""What is checked before any work starts: each override of the command line against Hydra's grammar, the
composed config, and every job of a grid sweep (its config and its dataset), each problem said in one paragraph
and nothing trained or logged. The checks a composed config must pass are :mod:`cifar_exp.validation`'s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence, cast

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from cifar_exp import errors
from cifar_exp.config import register, sqlite_path, task_overrides
from cifar_exp.errors import ConfigError, one_paragraph
from cifar_exp.validation import problems


def compose(overrides: Sequence[str], hydra_too: bool = False) -> DictConfig:
    """The project's config with ``overrides`` (no ``hydra.*`` keys unless ``hydra_too``), as Hydra composes it; a
    ConfigError in one paragraph for an unknown key or option or a wrong type."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register()
    try:
        with initialize_config_module("cifar_exp.conf", version_base="1.3"):
            return hydra_compose("config", overrides=list(overrides), return_hydra_config=hydra_too)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(one_paragraph(error)) from error


def malformed_override(args: list[str]) -> Optional[str]:
    """A message naming the first override Hydra's grammar cannot parse (Hydra's own message does not name it)."""
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            parser.parse_overrides([arg])
        except OverrideParseException as error:
            return (
                f"cannot parse the override {arg!r}: {error.message.splitlines()[0]} "
                "(a sweep lists values with commas and no empty value, e.g. dropout=winning,baseline; "
                "see https://hydra.cc/docs/advanced/override_grammar/basic). Nothing was trained or logged."
            )
    return None


def composition_error(args: list[str]) -> Optional[str]:
    """Hydra's own error for a single run's unknown key, unknown group option or wrong type, as one paragraph
    (Hydra prints several lines and exits 1). A sweep's jobs are checked by the sweep (see
    :func:`check_jobs`); command lines with other flags (``--cfg``, ``--help``) are left to Hydra. A single run's
    ``hydra`` overrides are composed with Hydra's own config (``hydra/sweeper=optun`` gets the closest option). A
    sweep's fixed
    overrides, ``hydra`` ones included (``+search=fast_cnnn``, ``hydra/sweeper/pruner=medain``), are composed as
    Hydra composes the sweep's own config, before any job: its swept values are the sweep's to check."""
    flags = [arg for arg in args if arg.startswith("-")]
    if any(flag not in ("-m", "--multirun") for flag in flags):
        return None
    if flags:
        parser = OverridesParser.create()
        task = [arg for arg in args if "=" in arg and not parser.parse_overrides([arg])[0].is_sweep_override()]
    else:
        task = args
    try:
        compose(task, hydra_too=bool(flags) or any(arg.lstrip("+~").startswith(("hydra.", "hydra/")) for arg in task))
    except ConfigError as error:
        return (
            f"{error} (python -m cifar_exp --help lists the config groups and their options). "
            "Nothing was trained or logged."
        )
    except Exception as error:  # noqa: BLE001 (Hydra failing on its own settings: hydra.sweeper.params.x=1)
        return (
            f"Hydra could not compose this command line ({type(error).__name__}: {' '.join(str(error).split())}); "
            "check its hydra.* overrides against python -m cifar_exp --cfg hydra. Nothing was trained or logged."
        )
    return None


BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
OPTUNA_SWEEPER = "hydra_plugins.cifar_exp_optuna.sweeper.OptunaSweeper"


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, expanded as Hydra's basic sweeper will (its ``params``, then the command line)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra

    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    parsed = parser.parse_overrides([*params, *task_overrides(config.hydra)])
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def check_jobs(config: DictConfig) -> None:
    """Compose and validate every job of a grid sweep before its parent run exists or any job trains, so a bad
    value anywhere in the grid (``optimizer.lr=1e-4,-1``, ``dropout=winning,winnig``) is one paragraph and
    nothing is logged. Searches (Optuna) draw their jobs as they go and are checked job by job. Called from the
    sweep's callback, inside the Hydra that runs the sweep, whose config search path it composes with."""
    from hydra import compose as compose_in_this_hydra
    from hydra.errors import HydraException

    resume = OmegaConf.select(config, "resume")
    if resume not in (None, "auto"):
        raise ConfigError(
            f"resume={resume} continues that one run, not the jobs of a sweep: run it without --multirun, with the "
            "overrides in the run's 'command' tag, or continue a sweep's unfinished jobs with resume=auto. No job was "
            "started and nothing was logged."
        )
    sweeper = OmegaConf.select(config, "hydra.sweeper._target_")
    if sweeper == OPTUNA_SWEEPER:
        return _check_search(config)
    if sweeper != BASIC_SWEEPER:
        return
    jobs = sweep_jobs(config)
    data_checked: dict[str, str] = {}  # each distinct dataset setting is loaded once: what was wrong with it
    for number, job in enumerate(jobs):
        try:
            composed = compose_in_this_hydra(config_name=config.hydra.job.config_name, overrides=job)
            said = "; ".join(problems(composed)) or _data_problem(composed.data, data_checked)
        except HydraException as error:
            said = one_paragraph(error)
        if said:
            own = [o for o in job if any(o not in other for other in jobs)] or job  # what sets this job apart
            raise ConfigError(
                f"job #{number} of the {len(jobs)} in this sweep ({' '.join(own)}) is not a valid run: {said}. "
                "No job was started and nothing was logged."
            )


def _check_search(config: DictConfig) -> None:
    """A search draws its trials as it goes, so what can be checked before the first one is: the sweeper's settings
    (metric, direction, trial count, failure rate, sampler, pruner, storage), that each range of the space is one
    Optuna can draw from, and that the runs at each end of every range (and each choice) are valid runs with a
    readable dataset. A problem is one paragraph, before the sweep's parent run or the study exist."""
    from hydra import compose as compose_in_this_hydra
    from hydra.errors import HydraException

    from cifar_exp.search import open_storage
    from hydra_plugins.cifar_exp_optuna.space import search_space, settings_problems, space_problems
    from hydra_plugins.cifar_exp_optuna.study import fixed_settings, study_name_for, study_problems

    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    overrides = [*params, *task_overrides(config.hydra)]
    said = settings_problems(config.hydra.sweeper)
    space_said, points = space_problems(overrides)
    said += space_said
    if not points and not space_said:
        said.append(
            "there is nothing to search: give +search=<space> (conf/search/) or sweep overrides such as "
            "'optimizer.lr=tag(log,interval(1e-4,1e-1))'"
        )
    fixed = search_space(overrides)[1] if not space_said else []
    data_checked: dict[str, str] = {}
    for point in points if not said else []:
        try:
            composed = compose_in_this_hydra(config_name=config.hydra.job.config_name, overrides=[*fixed, *point])
            problem = "; ".join(problems(composed)) or _data_problem(composed.data, data_checked)
        except HydraException as error:
            problem = one_paragraph(error)
        if problem:
            said.append(f"the trial with {point[0]} would not be a valid run: {problem}")
            break
    storage = config.hydra.sweeper.get("storage")
    if not said and _same_database(str(storage), str(OmegaConf.select(config, "tracking.uri"))):
        said.append(
            f"hydra.sweeper.storage={storage} is the tracking store's own database: MLflow and Optuna both keep their "
            "schema version in a table named alembic_version, so one database cannot hold both; give a database of "
            "its own, or a journal file (the default: optuna.journal beside an SQLite tracking store)"
        )
    if not said:
        try:
            backend = open_storage(str(storage))
        except Exception as error:  # noqa: BLE001 (a file, a database, a driver: said as the setting it came from)
            said.append(f"hydra.sweeper.storage={storage} cannot be opened ({errors.briefly(error)})")
        else:
            sweeper = config.hydra.sweeper
            space = search_space(overrides)[0]
            name = study_name_for(sweeper, config, space, fixed, backend)
            objective = (str(sweeper.metric), str(sweeper.direction))
            # As a trial composes it: a fixed entry of hydra.sweeper.params reaches the jobs, not the sweep's config.
            trained = compose_in_this_hydra(config_name=config.hydra.job.config_name, overrides=fixed)
            said += study_problems(backend, name, space, *objective, fixed_settings(trained, space))
    if said:
        raise ConfigError(
            "the search cannot start: " + "; ".join(s.rstrip(".") for s in said) + ". No trial was started and "
            "nothing was logged."
        )


def _same_database(storage: str, tracking_uri: str) -> bool:
    """Whether an Optuna storage (a URL, or a journal file's path) names the tracking store's database (an SQLite
    file by path, else the URL)."""
    db = sqlite_path(tracking_uri)
    if db is not None and (storage.startswith("sqlite:///") or "://" not in storage):
        return (sqlite_path(storage) or Path(storage)).resolve() == db.resolve()
    return storage == tracking_uri


def _data_problem(data: DictConfig, checked: dict[str, str]) -> str:
    """What is wrong with the dataset a job would load (missing, corrupt, a subset too small), '' if nothing:
    loaded once per distinct setting, before any job starts."""
    from cifar_exp.data import load_dataset

    settings = cast(dict[str, Any], OmegaConf.to_container(data, resolve=True))
    key = json.dumps(settings, sort_keys=True)
    if key not in checked:
        try:
            load_dataset(**settings)
            checked[key] = ""
        except errors.DataError as error:
            checked[key] = str(error).rstrip(".")
    return checked[key]
