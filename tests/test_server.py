"""A shared tracking server: a real ``mlflow server`` on loopback, with proxied artifact serving."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import requests
from conftest import all_runs, artifact_paths, cli, tiny
from mlflow.tracking import MlflowClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination",
         str(tmp_path / "server-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if requests.get(f"{uri}/health", timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("mlflow server did not start within 120 s")
    yield uri
    process.terminate()
    process.wait(timeout=30)


def test_a_job_logs_to_the_server_artifacts_included(server, tmp_path, npz_dir):
    args = [a for a in tiny(npz_dir, "sqlite:////unused/mlflow.db") if not a.startswith("tracking.uri=")]
    done = cli(tmp_path, *args, f"tracking.uri={server}", f"trainer.checkpoint_dir={tmp_path}/ckpt")
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(server)
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:")
    paths = artifact_paths(MlflowClient(server), run.info.run_id)
    assert {"model/model.h5", "plots/confusion_matrix.png"} <= paths
    assert list((tmp_path / "server-artifacts").rglob("model.h5"))  # stored by the server, not the client
