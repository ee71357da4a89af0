"""Small CIFAR-100-shaped datasets in every format the loader accepts, made by the tests themselves."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pytest
import requests
from mlflow.tracking import MlflowClient

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FINE_TO_COARSE = np.arange(100) % 20


def compose_config(overrides: list[str], return_hydra_config: bool = False):
    """The config ``python -m cifar_exp <overrides>`` would compose, without running it."""
    from hydra import compose, initialize_config_dir

    from cifar_exp.config import CONF_DIR, register

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=return_hydra_config)


def make_split(per_class: int, seed: int) -> dict[str, np.ndarray]:
    """``per_class`` images of each of the 100 fine classes, with a class-dependent mean so models can learn."""
    rng = np.random.default_rng(seed)
    y_fine = np.repeat(np.arange(100), per_class)
    rng.shuffle(y_fine)
    base = (y_fine * 37 % 256)[:, None, None, None]
    x = np.clip(base + rng.integers(-40, 40, size=(len(y_fine), 32, 32, 3)), 0, 255).astype(np.uint8)
    return {"x": x, "y_fine": y_fine.astype(np.uint8), "y_coarse": FINE_TO_COARSE[y_fine].astype(np.uint8)}


def fine_names() -> list[str]:
    return [f"fine{i}" for i in range(100)]


def coarse_names() -> list[str]:
    return [f"coarse{i}" for i in range(20)]


def write_npz(folder: Path, train: dict, test: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "train.npz", **train)
    np.savez(folder / "test.npz", **test)
    meta = {
        "fine_label_names": fine_names(),
        "coarse_label_names": coarse_names(),
        "fine_to_coarse": FINE_TO_COARSE.tolist(),
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def _pickle_dict(split: dict) -> dict:
    data = split["x"].transpose(0, 3, 1, 2).reshape(len(split["x"]), -1)
    return {b"data": data, b"fine_labels": split["y_fine"].tolist(), b"coarse_labels": split["y_coarse"].tolist()}


def write_pickles(folder: Path, train: dict, test: dict) -> Path:
    """The official layout: <folder>/cifar-100-python/{train,test,meta}."""
    inner = folder / "cifar-100-python"
    inner.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", train), ("test", test)):
        (inner / name).write_bytes(pickle.dumps(_pickle_dict(split)))
    meta = {
        b"fine_label_names": [n.encode() for n in fine_names()],
        b"coarse_label_names": [n.encode() for n in coarse_names()],
    }
    (inner / "meta").write_bytes(pickle.dumps(meta))
    return folder


def write_tarball(folder: Path, train: dict, test: dict) -> Path:
    pickles = write_pickles(folder / "unpacked", train, test)
    path = folder / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(pickles / "cifar-100-python", arcname="cifar-100-python")
    return path


@pytest.fixture(scope="session")
def tiny_splits() -> tuple[dict, dict]:
    return make_split(per_class=4, seed=1), make_split(per_class=2, seed=2)


@pytest.fixture(scope="session")
def npz_dir(tmp_path_factory, tiny_splits) -> Path:
    return write_npz(tmp_path_factory.mktemp("npz"), *tiny_splits)


@pytest.fixture(autouse=True)
def fresh_stop_state(monkeypatch) -> None:
    """Each test starts as a fresh process would: no stop received yet. A test that signals itself in-process
    leaves ``signals.received`` set, and a later test's sweep parent would then close as KILLED."""
    from cifar_exp import signals

    monkeypatch.setattr(signals, "received", None)
    monkeypatch.setattr(signals, "_pending", None)


@pytest.fixture()
def store_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


def cli(tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cifar_exp",
            *args,
            f"hydra.run.dir={tmp_path}/outputs",
            f"hydra.sweep.dir={tmp_path}/multirun",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ``python -c WITHOUT_TENSORFLOW <overrides>``: the CLI with TensorFlow, Keras and JAX refused, for errors that must
# come before any of them loads.
WITHOUT_TENSORFLOW = """
import runpy, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "jax"):
            raise ImportError(f"{name} was imported before the error")
sys.meta_path.insert(0, Refuse())
runpy.run_module("cifar_exp", run_name="__main__", alter_sys=True)
"""


def tiny(npz_dir: Path, store_uri: str) -> list[str]:
    checkpoints = Path(store_uri.removeprefix("sqlite:///")).parent / "checkpoints"
    return [
        "data.source=local",
        f"data.path={npz_dir}",
        f"tracking.uri={store_uri}",
        "trainer.epochs=1",
        "trainer.verbose=0",
        f"trainer.checkpoint_dir={checkpoints}",
    ]


def all_runs(uri: str):
    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def artifact_paths(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(uri: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    """Wait until an MLflow server answers ``/health``; fail with its log if it dies or never answers."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the MLflow server exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if requests.get(f"{uri}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"the MLflow server did not answer on {uri} within {seconds:.0f} s")


def mlflow_server_command(backend_store_uri: str, artifacts: Path) -> list[str]:
    """``mlflow server`` over a backend store, serving (proxying) artifacts from ``artifacts``."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        str(artifacts),
        "--workers",
        "1",
    ]


@contextmanager
def serve(command: list[str], log_dir: Path, port: Optional[int] = None) -> Iterator[str]:
    """Run an MLflow server ``command`` (host and port appended) on ``port`` (a free loopback one by default)
    until the block ends; yields its URI. Its output goes to a log file in ``log_dir``, shown if it fails to
    start."""
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"mlflow-server-{port}.log"
    with open(log, "w") as output:  # a file, not a pipe: a chatty server must never block on a full pipe
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(uri, process, log)
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def sweep_runs(uri: str):
    """The one sweep parent in the store and its children (sorted by name), each checked FINISHED and linked."""
    runs = all_runs(uri)
    (parent,) = [r for r in runs if r.data.tags.get("cifar_exp.role") == "sweep"]
    children = sorted((r for r in runs if r is not parent), key=lambda r: r.info.run_name)
    assert parent.info.status == "FINISHED", parent.data.tags
    for child in children:
        assert child.info.status == "FINISHED", child.data.tags.get("error")
        assert child.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    return parent, children


@contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A real filesystem of ``size`` (tmpfs) at ``path``: writes past it fail with ENOSPC."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
