"""The time-to-accuracy benchmark's machinery, on tiny generated data: two arms, per-epoch times, the target
found (or not) and the report recipe's extrapolated time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cifar_exp.config import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "benchmarks" / "time_to_accuracy.py"


def test_epoch_rows_and_time_to_target():
    sys.path.insert(0, str(SCRIPT.parent))
    from time_to_accuracy import epoch_rows, time_to

    history = {
        "epoch_seconds": [12.0, 11.0, 10.0],
        "images_per_second": [100.0, 200.0, 250.0],
        "val_accuracy": [0.3, 0.57, 0.6],
    }
    rows = epoch_rows(history, 1000, "val_accuracy")
    assert [r["wall_seconds"] for r in rows] == [12.0, 23.0, 33.0]
    assert [r["train_seconds"] for r in rows] == [10.0, 15.0, 19.0]
    assert time_to(rows, 0.5602)["epoch"] == 2 and time_to(rows, 0.7) is None


def test_benchmark_runs_both_arms(tmp_path, npz_dir):
    out = tmp_path / "tta.json"
    tiny = ["data.train_size=200", "trainer.epochs=2", "trainer.batch_size=64"]
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--data",
            str(npz_dir),
            "--seeds",
            "0,1",
            "--baseline-epochs",
            "1",
            "--target",
            "0.0",
            "--store",
            f"sqlite:///{tmp_path}/m.db",
            "--json",
            str(out),
            "--csv",
            str(tmp_path / "tta.csv"),
            "--set",
            *tiny,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    baseline, *speedrun = results
    assert baseline["arm"] == "report recipe" and baseline["epochs"] == 1
    assert [r["seed"] for r in speedrun] == [0, 1] and all(r["epochs"] == 2 for r in speedrun)
    for r in results:
        assert [row["epoch"] for row in r["rows"]] == list(range(1, r["epochs"] + 1))
        assert 0 < r["rows"][0]["train_seconds"] <= r["rows"][0]["wall_seconds"]
    assert all(r["reached"]["epoch"] == 1 for r in speedrun)  # a target of 0 is reached at the first epoch
    assert "(extrapolated, not measured)" in done.stdout and "x 150 epochs" in done.stdout
    assert "| +experiment=speedrun_cpu | 0 | 2 |" in done.stdout
    assert "mean final test accuracy" in done.stdout
    assert (tmp_path / "tta.csv").read_text().count("\n") == 1 + 1 + 2 * 2


@pytest.mark.parametrize("name", ["speedrun_cpu", "best_gpu"])
def test_speed_experiments_are_what_the_issue_asks(name):
    from conftest import compose_config

    cfg = compose_config([f"+experiment={name}"])
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.nesterov and cfg.loss.label_smoothing == 0.1
    assert cfg.schedule.name == "one_cycle" and cfg.trainer.tta_flip and cfg.data.val_split == 0
    assert cfg.model.name == {"speedrun_cpu": "fast_cnn", "best_gpu": "preact_resnet18"}[name]
    assert cfg.trainer.precision == {"speedrun_cpu": "float32", "best_gpu": "mixed"}[name]
