"""The sweep callback's parent run: named after the experiment or the swept keys; opened and closed around
the jobs (end to end in test_main.py, test_faults.py and test_launchers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli, tiny
from omegaconf import OmegaConf

from cifar_exp.sweep import MlflowSweepCallback, sweep_name


def _cfg(experiment, overrides):
    return OmegaConf.create({"experiment": experiment, "hydra": {"overrides": {"task": overrides}}})


def test_parent_named_after_the_experiment_or_the_swept_keys():
    assert sweep_name(_cfg("decay", ["optimizer.lr=1e-3,1e-4"])) == "sweep-decay"
    assert (
        sweep_name(_cfg(None, ["dropout=winning,baseline", "seed=1", "optimizer.lr=1e-3,1e-4"]))
        == "sweep-dropout-optimizer.lr"
    )


def test_untracked_sweeps_open_no_parent(monkeypatch):
    monkeypatch.setattr("cifar_exp.signals.install", lambda: None)  # leave pytest's own signal handlers alone
    callback = MlflowSweepCallback()
    callback.on_multirun_start(OmegaConf.create({"tracking": {"enabled": False}}))
    assert callback.parent_run_id is None
    callback.on_multirun_end(OmegaConf.create({}))  # nothing to close, nothing raised


@pytest.mark.parametrize(
    "swept,said",
    [
        (
            "optimizer.lr=1e-4,-1",
            "job #1 of the 2 in this sweep (optimizer.lr=-1) is not a valid run: optimizer.lr=-1.0",
        ),
        (
            "dropout=winning,winnig",
            "job #1 of the 2 in this sweep (dropout=winnig) is not a valid run: In 'config': "
            "Could not find 'dropout/winnig'",
        ),
    ],
)
def test_a_bad_value_anywhere_in_a_grid_stops_the_sweep_before_any_job_or_run(
    tmp_path, npz_dir, store_uri, swept, said
):
    done = cli(tmp_path, "--multirun", *tiny(npz_dir, store_uri), "trainer.epochs=1", swept)
    assert done.returncode == 2 and said in done.stderr, done.stderr[-2000:]
    assert "No job was started and nothing was logged." in done.stderr and "Traceback" not in done.stderr
    assert not Path(store_uri.removeprefix("sqlite:///")).exists()  # no parent, no store
