"""Range checks on a composed config: what types cannot express, reported all at once before any work starts.

Hydra and the schema in :mod:`cifar_exp.config` already refuse unknown keys and wrong types; these checks refuse
a negative learning rate, momentum on Adam, a dropout rate of 1.5 or a data path that does not exist, in one
paragraph that names every problem. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cifar_exp.config import options
from cifar_exp.errors import ConfigError, closest, one_paragraph
from cifar_exp.identity import RUN_ID

MOMENTUM_OPTIMIZERS = ("sgd",)  # the optimizers that read optimizer.momentum and optimizer.nesterov


def _choices() -> dict[str, tuple[str, ...]]:
    return {
        "data.source": ("keras", "local"),
        "data.label_mode": ("fine", "coarse"),
        "model.name": options("model"),
        "optimizer.name": options("optimizer"),
        "augmentation.name": options("augmentation"),
        "schedule.name": options("schedule"),
        "trainer.precision": ("float32", "mixed"),
    }


def added_keys(node: DictConfig, prefix: str = "") -> list[tuple[str, list[str]]]:
    """Keys that are not in the schema, each with the settings beside it: Hydra lets ``+trainer.epoch=1`` add
    one, which nothing reads (the run would silently train ``trainer.epochs``)."""
    kind = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(kind):
        return []
    allowed = [f.name for f in dataclasses.fields(kind)]
    found: list[tuple[str, list[str]]] = []
    for key in node.keys():
        if key == "hydra" and not prefix:  # Hydra's own settings, where the config was composed with them
            continue
        if key not in allowed:
            found.append((f"{prefix}{key!s}", allowed))
        elif isinstance(child := node._get_node(key), DictConfig):
            found += added_keys(child, f"{prefix}{key}.")
    return found


def _not_a_setting(dotted: str, beside: list[str]) -> str:
    parent, _, leaf = dotted.rpartition(".")
    meant = closest(leaf, beside)
    hint = f"the closest setting is {parent + '.' if parent else ''}{meant}; " if meant else ""
    return f"{dotted} is not a setting ({hint}nothing would read it; python -m cifar_exp --cfg job lists them all)"


def _resolved(path: str) -> str:
    """Where a path that does not exist leads, for the message; a symlink loop makes Path.resolve raise (Python 3.11's
    RuntimeError), which must not turn the message into a traceback."""
    try:
        return f"resolved to {Path(path).resolve()}"
    except (OSError, RuntimeError) as error:
        return f"a symlink loop: {error}"


def _get(cfg: DictConfig, dotted: str) -> Any:
    return OmegaConf.select(cfg, dotted)


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming every out-of-range setting, before any work starts."""
    found = problems(cfg)
    if found:
        raise ConfigError("Invalid configuration: " + "; ".join(found) + ". Nothing was trained or logged.")


def problems(cfg: DictConfig) -> list[str]:
    """Every out-of-range or inconsistent setting of ``cfg``, each as ``key=value must be ...``; a setting whose
    interpolation resolves to nothing (``trainer.epochs=${oops}``) alone, as the others cannot be read then."""
    try:  # Hydra's own node, where the config was composed with it, resolves only inside a running job
        OmegaConf.to_container(OmegaConf.masked_copy(cfg, [str(key) for key in cfg if key != "hydra"]), resolve=True)
    except OmegaConfBaseException as error:
        return [
            f"{error.full_key}: {one_paragraph(error)}" if getattr(error, "full_key", None) else one_paragraph(error)
        ]
    problems: list[str] = [_not_a_setting(key, beside) for key, beside in added_keys(cfg)]
    for key, allowed in _choices().items():
        if _get(cfg, key) not in allowed:
            problems.append(f"{key}={_get(cfg, key)!r} is not one of {', '.join(allowed)}")

    def check(key: str, ok: bool, rule: str) -> None:
        if not ok:
            problems.append(f"{key}={_get(cfg, key)!r} must be {rule}")

    check("optimizer.lr", 0 < _get(cfg, "optimizer.lr") < math.inf, "> 0 and finite (e.g. optimizer.lr=1e-4)")
    check("optimizer.decay", 0 <= _get(cfg, "optimizer.decay") < math.inf, ">= 0 and finite (0 switches decay off)")
    check("optimizer.momentum", 0 <= _get(cfg, "optimizer.momentum") < 1, "in [0, 1)")
    if _get(cfg, "optimizer.name") not in MOMENTUM_OPTIMIZERS:
        for key, off in (("optimizer.momentum", 0.0), ("optimizer.nesterov", False)):
            check(
                key,
                _get(cfg, key) == off,
                f"{off} for optimizer={_get(cfg, 'optimizer.name')}, which has no "
                f"momentum (it applies to {', '.join(MOMENTUM_OPTIMIZERS)} only)",
            )
    for key in ("seed", "data.split_seed"):
        check(key, 0 <= _get(cfg, key) < 2**32, "in [0, 2**32 - 1] (what NumPy and TensorFlow accept)")
    check(
        "tracking.experiment", bool(str(_get(cfg, "tracking.experiment")).strip()), "a non-empty MLflow experiment name"
    )
    check("optimizer.weight_decay", 0 <= _get(cfg, "optimizer.weight_decay") < math.inf, ">= 0 and finite")
    ema = _get(cfg, "optimizer.ema")
    check("optimizer.ema", ema is None or 0 < ema < 1, "null (no weight average) or a momentum in (0, 1), e.g. 0.99")
    if _get(cfg, "optimizer.decay") and _get(cfg, "schedule.name") != "keras2_decay":
        problems.append(
            f"optimizer.decay={_get(cfg, 'optimizer.decay')} is the Keras-2 decay of "
            f"schedule=keras2_decay; schedule={_get(cfg, 'schedule.name')} needs optimizer.decay=0"
        )
    check("schedule.warmup_fraction", 0 <= _get(cfg, "schedule.warmup_fraction") < 1, "a fraction in [0, 1)")
    for fraction in ("schedule.initial_fraction", "schedule.final_fraction"):
        check(fraction, 0 <= _get(cfg, fraction) <= 1, "a fraction in [0, 1]")
    check("loss.label_smoothing", 0 <= _get(cfg, "loss.label_smoothing") < 1, "in [0, 1) (e.g. 0.1)")
    for rate in ("conv2", "conv3", "dense"):
        value = _get(cfg, f"dropout.{rate}")
        check(f"dropout.{rate}", 0 <= value < 1, "a dropout rate in [0, 1)")
    check("augmentation.shift", 0 <= _get(cfg, "augmentation.shift") < 0.5, "a fraction in [0, 0.5)")
    check("trainer.epochs", _get(cfg, "trainer.epochs") >= 1, ">= 1")
    check("trainer.batch_size", _get(cfg, "trainer.batch_size") >= 1, ">= 1 (the report used 32)")
    check("trainer.steps_per_execution", _get(cfg, "trainer.steps_per_execution") >= 1, ">= 1")
    check(
        "trainer.verbose",
        _get(cfg, "trainer.verbose") in (0, 1, 2),
        "0 (silent), 1 (a progress bar) or 2 (a line per epoch)",
    )
    budget = _get(cfg, "trainer.max_minutes")
    check("trainer.max_minutes", budget is None or budget > 0, "null (no limit) or a positive number of minutes")
    interval = _get(cfg, "tracking.system_metrics_interval")
    check(
        "tracking.system_metrics_interval",
        interval is None or interval > 0,
        "null (off) or a positive number of seconds",
    )
    check("data.val_split", 0 <= _get(cfg, "data.val_split") < 1, "in [0, 1) (0 validates on the test set)")
    for size in ("data.train_size", "data.test_size"):
        value = _get(cfg, size)
        check(size, value is None or value >= 1, "null (all images) or a positive number of images")
    if _get(cfg, "data.source") == "local":
        path = _get(cfg, "data.path")
        if not path:
            problems.append(
                "data.source=local needs data.path=<folder with train.npz/test.npz, "
                "the cifar-100-python pickles, or cifar-100-python.tar.gz>"
            )
        elif not Path(path).exists():
            problems.append(
                f"data.path={path!r} does not exist ({_resolved(path)}); "
                "point it at a local CIFAR-100 copy (a folder of train.npz and test.npz, the cifar-100-python "
                "pickles, or cifar-100-python.tar.gz)"
            )
    resume = _get(cfg, "resume")
    check(
        "resume",
        resume is None or resume == "auto" or RUN_ID.fullmatch(str(resume)) is not None,
        "null, auto (continue this configuration's unfinished run) or a run id of 32 hex digits",
    )
    return problems
