"""A plain (non-editable) install of the wheel runs from any working directory: the configs ship inside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_ROOT, all_runs


def test_the_wheel_carries_its_configs_and_trains_from_anywhere(tmp_path, npz_dir):
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(
        PROJECT_ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "mlruns", "outputs", "multirun", "build", "*.egg-info", "__pycache__", ".pytest_cache"
        ),
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("cifar_exp-*.whl")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "3"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
        )

    where = run("-c", "import cifar_exp.config as c; print(c.__file__); print(c.CONF_DIR); print(c.PROJECT_ROOT)")
    module, conf, root = where.stdout.split()
    assert module.startswith(str(target)) and Path(conf, "config.yaml").is_file() and root == str(elsewhere)
    helped = run("-m", "cifar_exp", "--help")
    assert helped.returncode == 0 and "augmentation: keras2, none, shift_flip" in helped.stdout
    trained = run(
        "-m",
        "cifar_exp",
        "data.source=local",
        f"data.path={npz_dir}",
        "trainer.epochs=1",
        "trainer.verbose=0",
        "data.train_size=200",
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    (finished,) = all_runs(f"sqlite:///{elsewhere}/mlruns/mlflow.db")  # the default store, in the working directory
    assert finished.info.status == "FINISHED"
