"""Which study a search runs (its name), what the study keeps of the settings its trials trained with, and what
keeps a search from continuing an existing study: checked before the search starts."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution

from cifar_exp.identity import LOCATION, is_bookkeeping
from cifar_exp.search import FIXED_ATTR, METRIC_ATTR

DEFAULT_OBJECTIVE = ("val_accuracy", "maximize")


def default_study_name(
    space: dict[str, BaseDistribution],
    fixed: list[str],
    config: DictConfig,
    objective: tuple[str, str],
    location: bool = False,
) -> str:
    """``<search space name>-<hash>``: the same command continues the same study; another space, other fixed
    settings (bookkeeping such as tracking or verbosity, and where the data lies, aside: the study keeps the settings
    themselves, see :func:`study_problems`) or another ``objective`` (metric, direction) start another (the default
    objective leaves the hash as it was before it counted, so those studies continue). ``location``: the name as it
    was while ``data.path`` counted."""
    choice = OmegaConf.select(config, "hydra.runtime.choices.search") or "search"
    keys = {o: o.lstrip("+~").split("=", 1)[0] for o in fixed}
    kept = sorted(o for o in fixed if not is_bookkeeping(keys[o]) and (location or keys[o] != LOCATION))
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
    sweeper: DictConfig,
    config: DictConfig,
    space: dict[str, BaseDistribution],
    fixed: list[str],
    storage: Optional[optuna.storages.BaseStorage] = None,
) -> str:
    """The study this search runs: ``hydra.sweeper.study_name``, else :func:`default_study_name`; a study in
    ``storage`` named while ``data.path`` counted in the name goes on under that name (where no study has the new)."""
    if sweeper.get("study_name"):
        return str(sweeper.study_name)
    objective = (str(sweeper.get("metric")), str(sweeper.get("direction")).lower())
    name = default_study_name(space, fixed, config, objective)
    before = default_study_name(space, fixed, config, objective, location=True)
    if before != name and storage is not None and _exists(storage, before) and not _exists(storage, name):
        return before
    return name


def _exists(storage: optuna.storages.BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


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
