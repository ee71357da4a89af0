"""Which run a job is, decided against the store once its data is read and before TensorFlow loads: a new run, one
to continue (``resume``), or none because its configuration already FINISHED on the same data; a resume that
cannot be honoured is said before any training starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import DictConfig

from cifar_exp import tracking
from cifar_exp.config import options
from cifar_exp.identity import config_hashes, run_name


@dataclass
class JobContext:
    """What the launcher knows about this job and the config does not: overrides, sweep membership."""

    overrides: list[str] = field(default_factory=list)
    sweep_dir: Optional[str] = None  # set for the jobs of a multirun
    job_num: Optional[int] = None  # Hydra's number of this job in its multirun


def plan_job(cfg: DictConfig, context: JobContext, fingerprint: Optional[str] = None) -> tracking.Job:
    """The job of ``cfg`` on the data of ``fingerprint`` planned against its store (see
    :func:`cifar_exp.tracking.start_job`); nothing is created."""
    return tracking.start_job(
        cfg.tracking.uri if cfg.tracking.enabled else None,
        cfg.tracking.experiment,
        run_name(cfg),
        config_hashes(cfg, options("experiment")),
        cfg.trainer.checkpoint_dir,
        cfg.resume,
        cfg.force,
        context.sweep_dir,
        cfg.search.trial,
        fingerprint,
    )
