"""Sweeps beyond one process: a local Ray head (``hydra/launcher=ray``) and submitit's local executor (the
SLURM launcher's code path without a cluster), each a two-job sweep into one tracking store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli, compose_config, free_port, sweep_runs, tiny

NAMES = ["adam-lr1e-3-winning-shift_flip-s0", "adam-lr1e-4-winning-shift_flip-s0"]


@pytest.fixture()
def ray_head():
    """A Ray head on loopback with two CPUs; yields its address and stops it afterwards."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="hydra-ray-launcher missing: make install")
    ray = str(Path(sys.executable).with_name("ray"))
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run(
        [
            ray,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=300)


def test_ray_launcher_runs_the_sweep_on_a_ray_head(tmp_path, npz_dir, store_uri, ray_head):
    done = cli(
        tmp_path,
        "--multirun",
        *tiny(npz_dir, store_uri),
        "optimizer.lr=1e-3,1e-4",
        "hydra/launcher=ray_cluster",
        f"hydra.launcher.ray.init.address={ray_head}",
        "hydra.launcher.ray.remote.num_cpus=1",
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parent, children = sweep_runs(store_uri)
    assert [c.info.run_name for c in children] == NAMES
    assert parent.data.metrics["jobs"] == 2 and parent.data.metrics["failed_jobs"] == 0
    assert parent.data.tags["launcher"] == "RayLauncher"
    assert all(c.data.tags["pid"] != parent.data.tags["pid"] for c in children)  # ran in Ray's workers


def test_submitit_local_runs_each_job_in_its_own_process(tmp_path, npz_dir, store_uri):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher missing")
    done = cli(
        tmp_path,
        "--multirun",
        *tiny(npz_dir, store_uri),
        "optimizer.lr=1e-3,1e-4",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=20",
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parent, children = sweep_runs(store_uri)
    assert [c.info.run_name for c in children] == NAMES and parent.data.metrics["jobs"] == 2
    assert parent.data.tags["launcher"] == "LocalLauncher"
    assert len({c.data.tags["pid"] for c in children} | {parent.data.tags["pid"]}) == 3
    assert list((tmp_path / "multirun").glob(".submitit/*/*_log.out"))  # submitit's own job logs


@pytest.mark.parametrize(
    "preset, target", [("slurm", "SlurmLauncher"), ("submitit_slurm", "SlurmLauncher"), ("ray_cluster", "RayLauncher")]
)
def test_cluster_presets_compose(preset, target):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    cfg = compose_config([f"hydra/launcher={preset}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    if preset == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min == 720
