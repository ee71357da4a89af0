"""``python -m cifar_exp [overrides]``: validate the composed config, then hand it to the trainer."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cifar_exp.config import register, validate
from cifar_exp.errors import CifarExpError

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
    try:
        validate(cfg)
        from cifar_exp.train import JobContext, train  # TensorFlow loads only once the config is valid

        context = JobContext(overrides=list(hydra_cfg.overrides.task),
                             sweep_dir=str(Path(hydra_cfg.sweep.dir).resolve()) if multirun else None)
        return train(cfg, context).metrics["test_accuracy"]
    except CifarExpError as error:
        if multirun:
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
