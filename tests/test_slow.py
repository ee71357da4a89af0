"""Checks on the real CIFAR-100 (``make test-slow``; needs CIFAR100_DIR or ../shared/data/cifar100)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import all_runs, cli

from cifar_exp.config import PROJECT_ROOT
from cifar_exp.data import load_dataset

REAL = Path(os.environ.get("CIFAR100_DIR", PROJECT_ROOT.parent / "shared" / "data" / "cifar100"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (REAL / "train.npz").exists(), reason=f"no CIFAR-100 copy at {REAL}"),
]


def test_real_dataset_loads_with_the_official_counts():
    data = load_dataset("local", str(REAL))
    assert len(data.y_train) == 41_500 and len(data.y_val) == 8_500 and len(data.y_test) == 10_000
    assert np.bincount(np.concatenate([data.y_train, data.y_val]), minlength=100).tolist() == [500] * 100
    assert data.class_names[:3] == ["apple", "aquarium_fish", "baby"]


def test_winning_config_learns_in_one_epoch(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = cli(
        tmp_path,
        "data=local",
        f"data.path={REAL}",
        f"tracking.uri={uri}",
        "trainer.epochs=1",
        "data.train_size=10000",
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(uri)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] > 0.03  # chance is 0.01
