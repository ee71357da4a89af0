"""A shared tracking server: a real ``mlflow server`` on loopback with proxied artifact serving, over SQLite
and over PostgreSQL (the team setup of the README), started by the test itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import all_runs, artifact_paths, cli, free_port, mlflow_server_command, serve, tiny
from mlflow.tracking import MlflowClient


def postgres_bin(name: str) -> str | None:
    """A PostgreSQL program from PATH or Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@pytest.fixture(scope="module")
def postgres_uri():
    """A throwaway PostgreSQL cluster on a free loopback port, as the ``postgres`` user when run as root
    (the server refuses root); yields a SQLAlchemy URI of an empty ``mlflow`` database."""
    initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed here (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg missing: make install (extra 'server')")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="cifar_exp_pg_"))
    if as_user:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [
                *as_user,
                pg_ctl,
                "-D",
                str(data),
                "-l",
                str(data / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user="mlflow", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute("CREATE DATABASE mlflow")
        yield f"postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(data, ignore_errors=True)


def run_job_against(server: str, tmp_path: Path, npz_dir: Path):
    args = [a for a in tiny(npz_dir, "sqlite:////unused/mlflow.db") if not a.startswith("tracking.uri=")]
    done = cli(tmp_path, *args, f"tracking.uri={server}", f"trainer.checkpoint_dir={tmp_path}/ckpt")
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(server)
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:")
    paths = artifact_paths(MlflowClient(server), run.info.run_id)
    assert {"model/model.h5", "plots/confusion_matrix.png"} <= paths
    assert list((tmp_path / "server-artifacts").rglob("model.h5"))  # stored by the server, not the client
    return run


def test_a_job_logs_to_the_server_artifacts_included(tmp_path, npz_dir):
    with serve(
        mlflow_server_command(f"sqlite:///{tmp_path}/server.db", tmp_path / "server-artifacts"), tmp_path
    ) as server:
        run_job_against(server, tmp_path, npz_dir)


def test_a_server_on_postgresql_keeps_the_runs_in_the_database(tmp_path, npz_dir, postgres_uri):
    with serve(mlflow_server_command(postgres_uri, tmp_path / "server-artifacts"), tmp_path) as server:
        run = run_job_against(server, tmp_path, npz_dir)
    import psycopg

    with psycopg.connect(postgres_uri.replace("+psycopg", "")) as connection:
        status = connection.execute("SELECT status FROM runs WHERE run_uuid = %s", (run.info.run_id,)).fetchone()
        accuracy = connection.execute(
            "SELECT value FROM latest_metrics WHERE run_uuid = %s AND key = %s", (run.info.run_id, "test_accuracy")
        ).fetchone()
    assert status == ("FINISHED",)
    assert accuracy[0] == pytest.approx(run.data.metrics["test_accuracy"])


def test_a_server_that_dies_mid_run_is_one_paragraph_and_resume_continues_the_run(tmp_path, npz_dir):
    """The server goes away at a run's first checkpoint and stays away: the run ends with one paragraph naming the
    store and resume=auto (not Hydra's traceback, not a wait of minutes: MLflow's retries are bounded, here
    further by the user's own settings); once the server is back, resume=auto continues the same run."""
    import sys
    import time

    command = mlflow_server_command(f"sqlite:///{tmp_path}/server.db", tmp_path / "server-artifacts")
    port = free_port()
    store = f"http://127.0.0.1:{port}"
    args = [a for a in tiny(npz_dir, "sqlite:////unused/mlflow.db") if not a.startswith(("tracking.uri=", "trainer."))]
    args += [f"tracking.uri={store}", f"trainer.checkpoint_dir={tmp_path}/ckpt", "trainer.epochs=40"]
    args += ["trainer.verbose=0", "data.train_size=200", "augmentation=none", f"hydra.run.dir={tmp_path}/outputs"]
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "HYDRA_FULL_ERROR": "0", **quick}
    with open(tmp_path / "run.log", "w+") as log:
        with serve(command, tmp_path, port):
            process = subprocess.Popen(
                [sys.executable, "-m", "cifar_exp", *args], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            deadline = time.time() + 240
            while not list((tmp_path / "ckpt").glob("*/epoch_*.npz")):
                assert process.poll() is None and time.time() < deadline, Path(log.name).read_text()[-3000:]
                time.sleep(0.05)
        gone = time.time()  # the server stopped with the block
        assert process.wait(timeout=300) == 2
        waited = time.time() - gone
        said = Path(log.name).read_text()
    assert "Traceback" not in said, said[-3000:]
    (line,) = [x for x in said.splitlines() if x.startswith("error: ")]
    assert line.startswith(f"error: the tracking store {store} failed while the run was being recorded (")
    assert "resume=auto continues it" in line
    assert waited < 120, waited  # three store calls, each one retry of at most 5 s, after the server went
    with serve(command, tmp_path, port):
        (stopped,) = all_runs(store)
        assert stopped.info.status in ("RUNNING", "FAILED")  # the store could not take its end
        done = cli(tmp_path, *args[:-1], "resume=auto")
        assert done.returncode == 0, done.stderr[-3000:]
        (run,) = all_runs(store)
        assert run.info.run_id == stopped.info.run_id and run.info.status == "FINISHED"
        history = MlflowClient(store).get_metric_history(run.info.run_id, "loss")
        assert sorted(m.step for m in history) == list(range(40))
