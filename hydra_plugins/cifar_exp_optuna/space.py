"""The search space: Hydra's sweep syntax (``interval``, ``tag(log|int, ...)``, ``range``, ``choice``) as Optuna
distributions, and what is wrong with a space or with the sweeper's own settings, said before a search starts."""

from __future__ import annotations

import math
from typing import Any, cast

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.errors import OverrideParseException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution


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
