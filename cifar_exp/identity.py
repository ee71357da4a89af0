"""What a run is, derived from its config: the hash that finds it again, the name it is shown by, the report's
figure it is judged against.

The hash covers what changes the computation and nothing else (where a run logs or how it prints is
bookkeeping; where its data lies is no part of it, the dataset fingerprint says what the data is), so ``resume=auto``
and a sweep's skipping find a run whatever store, verbosity or spelling of the data's folder it used.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable, Iterable, Mapping, Optional, TypeVar, cast

from omegaconf import DictConfig, OmegaConf

RUN_ID = re.compile(r"[0-9a-f]{32}")  # an MLflow run's id (use fullmatch: a whole id, not part of one)

# The tags a run is found again by: its config's hash and its data's fingerprint (the same data wherever it lies).
CONFIG_HASH_TAG = "config_hash"
FINGERPRINT_TAG = "dataset_fingerprint"

# Keys that change where a run logs or how it prints, not what it computes.
BOOKKEEPING = ("tracking", "resume", "force", "report_figures", "trainer.verbose", "trainer.checkpoint_dir")


def is_bookkeeping(dotted_key: str) -> bool:
    """Whether a dotted config key is bookkeeping (see :data:`BOOKKEEPING`)."""
    return any(dotted_key == key or dotted_key.startswith(f"{key}.") for key in BOOKKEEPING)


# Keys added after runs were recorded, at the values that compute exactly what those runs computed: left out of
# the hash at these values, so a run recorded before them keeps its hash (resume=auto and sweep skipping find it).
HASH_NEUTRAL: dict[str, Any] = {
    "optimizer.weight_decay": 0.0,
    "optimizer.ema": None,
    "loss": {"label_smoothing": 0.0},
    "schedule": {"name": "keras2_decay", "warmup_fraction": 0.0, "initial_fraction": 1.0, "final_fraction": 1.0},
    "trainer.precision": "float32",
    "trainer.tta_flip": False,
    "trainer.restore_best": False,
    "search": {"study": None, "storage": None, "trial": None},
}


def _pop(container: Any, dotted: str, only_if: Any = ...) -> None:
    *parents, leaf = dotted.split(".")
    node = container
    for parent in parents:
        node = node.get(parent) or {}
    if leaf in node and (only_if is ... or node[leaf] == only_if):
        node.pop(leaf)


# Where the data lies, not what it is: ``data=local`` and ``data.path=/abs/path`` name the same files, so one run
# serves both. What the data is, the dataset fingerprint says, and every skip or resume checks it beside the hash.
# Runs recorded until 2026-11-27 hashed it, see config_hashes.
LOCATION = "data.path"

# Which of the report's experiments a run belongs to: a label, not what the run computes. Hashed as if unset, so one
# configuration that two experiments share (dropout's baseline arm is augmentation's none arm) is one run, which
# each experiment's sweep finds and skips; runs recorded before (2026-11-27) hashed it, see legacy_config_hashes.
LABEL = "experiment"


def config_hash(cfg: DictConfig, label: Optional[str] = None, location: bool = False) -> str:
    """A short hash of everything that changes what a run computes (not where it logs or how it prints, where its
    data lies, nor which report experiment it is filed under). ``label``: hash it as filed under that one, and
    ``location``: with ``data.path``, as runs once were."""
    container = cast(dict, OmegaConf.to_container(cfg, resolve=True))
    for key in (*BOOKKEEPING, *(() if location else (LOCATION,))):
        _pop(container, key)
    for key, neutral in HASH_NEUTRAL.items():
        _pop(container, key, neutral)
    if LABEL in container:
        container[LABEL] = label
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


def config_hashes(cfg: DictConfig, experiments: Iterable[str]) -> list[str]:
    """The config's hash, then the hashes that runs of the same computation recorded earlier carry: with its
    ``data.path`` as spelled here (until 2026-11-27), and also filed under ``experiments`` or under this config's
    own (before the experiment label left the hash): the runs a job may skip or continue."""
    own = cfg.get(LABEL)
    labels = dict.fromkeys([None, *([own] if own else []), *experiments])
    return [config_hash(cfg), *(config_hash(cfg, label, location=True) for label in labels)]


def format_lr(lr: float) -> str:
    """1e-4 -> '1e-4', 0.0005 -> '5e-4', 0.01 -> '1e-2'."""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


MODELS_WITH_DROPOUT = ("report_cnn", "report_cnn_bn")  # the others ignore the dropout group


def run_name(cfg: DictConfig) -> str:
    """A name that says what varies, e.g. ``adam-lr1e-4-winning-shift_flip-s0`` (``-trial3`` for a search's trial);
    another model than the report's leads the name (``fast_cnn-sgd-lr2e-1-shift_flip-s0``), without the dropout
    profile where the model has no dropout layers."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    model = cfg.model.name
    parts = [] if model == "report_cnn" else [model]
    parts += [cfg.optimizer.name, f"lr{format_lr(cfg.optimizer.lr)}"]
    if cfg.optimizer.decay:
        parts.append(f"decay{cfg.optimizer.decay:g}")
    if model in MODELS_WITH_DROPOUT:
        parts.append(cfg.dropout.name)
    parts += [cfg.augmentation.name, f"s{cfg.seed}"]
    if cfg.data.label_mode != "fine":
        parts.append(cfg.data.label_mode)  # a 20-class run must never pass for a 100-class one
    if OmegaConf.select(cfg, "search.trial") is not None:
        parts.append(f"trial{cfg.search.trial}")
    return "-".join(parts)


Figure = TypeVar("Figure", bound=Mapping[str, Any])


def matching_figure(
    figures: Iterable[Figure], label_mode: str, matches: Callable[[str, Any], bool]
) -> Optional[Figure]:
    """The first of the report's figures whose ``when`` settings all match (``matches(key, value)``), if any; none
    for a run on the 20 coarse labels, since the report's figures are all 100-class accuracies. The one rule for a
    run being trained (its config) and a run being judged (its logged params)."""
    if label_mode != "fine":
        return None
    for figure in figures:
        if all(matches(key, value) for key, value in (figure.get("when") or {}).items()):
            return figure
    return None


def report_figure_for(cfg: DictConfig) -> Optional[DictConfig]:
    """The report's figure for this run's config (see :func:`matching_figure`)."""
    return matching_figure(
        cfg.get("report_figures") or [],
        str(OmegaConf.select(cfg, "data.label_mode")),
        lambda key, value: OmegaConf.select(cfg, key) == value,
    )
