"""Runs that survive: resume after kill -9, deterministic reruns, sweeps that finish and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import all_runs, cli, compose_config, make_split, tiny, write_npz
from mlflow.tracking import MlflowClient

from cifar_exp import checkpoint

EPOCHS = 4


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key))


def weights(uri: str, run_id: str, tmp_path: Path) -> list[np.ndarray]:
    import keras

    path = MlflowClient(uri).download_artifacts(run_id, "model/model.h5", str(tmp_path / run_id))
    return keras.models.load_model(path).get_weights()


def deterministic(npz_dir: Path, uri: str) -> list[str]:
    return [*tiny(npz_dir, uri), f"trainer.epochs={EPOCHS}", "trainer.deterministic=true", "seed=7"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, npz_dir):
    """An uninterrupted deterministic run."""
    tmp_path = tmp_path_factory.mktemp("reference")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    done = cli(tmp_path, *deterministic(npz_dir, uri))
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(uri)
    return uri, run, tmp_path


def test_two_deterministic_runs_are_identical(reference, npz_dir, tmp_path):
    ref_uri, ref_run, ref_dir = reference
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert cli(tmp_path, *deterministic(npz_dir, uri)).returncode == 0
    (run,) = all_runs(uri)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert history(uri, run.info.run_id, key) == history(ref_uri, ref_run.info.run_id, key), key
    for a, b in zip(weights(uri, run.info.run_id, tmp_path), weights(ref_uri, ref_run.info.run_id, ref_dir)):
        np.testing.assert_array_equal(a, b)


def test_resume_after_kill_9_continues_the_same_run(reference, npz_dir, tmp_path):
    ref_uri, ref_run, _ = reference
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = deterministic(npz_dir, uri)
    checkpoints = tmp_path / "checkpoints"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "cifar_exp", *args, f"hydra.run.dir={tmp_path}/out"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not list(checkpoints.glob("*/epoch_0000[12].npz")) and time.time() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (killed,) = all_runs(uri)
    assert killed.info.status == "RUNNING"  # what kill -9 leaves behind

    done = cli(tmp_path, *args, "resume=auto")
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(uri)
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert int(run.data.tags["resumed_at_epoch"]) >= 1
    for key in ("loss", "val_accuracy", "epoch_seconds"):
        assert [step for step, _ in history(uri, run.info.run_id, key)] == list(range(EPOCHS)), key
    for key in ("loss", "val_loss", "val_accuracy"):
        assert history(uri, run.info.run_id, key) == history(ref_uri, ref_run.info.run_id, key), key
    assert run.data.metrics["test_accuracy"] == ref_run.data.metrics["test_accuracy"]
    assert run.data.metrics["test_loss"] == pytest.approx(ref_run.data.metrics["test_loss"], rel=1e-6)
    assert not any(checkpoints.glob("*/epoch_*.npz"))  # a finished run keeps no checkpoint


def test_resume_errors_are_clear(tmp_path, npz_dir, store_uri):
    done = cli(tmp_path, *tiny(npz_dir, store_uri), "resume=0123456789abcdef0123456789abcdef")
    assert done.returncode == 2 and "resume=0123456789abcdef0123456789abcdef" in done.stderr


def test_stale_running_run_is_marked_killed(npz_dir, store_uri):
    from cifar_exp.tracking import client_for, experiment_id
    from cifar_exp.train import train

    cfg = compose_config([*tiny(npz_dir, store_uri), "data.train_size=200"])
    first = train(cfg)
    client = client_for(store_uri)
    tags = client.get_run(first.run_id).data.tags
    ghost = client.create_run(
        experiment_id(client, "cifar_exp"),
        run_name="ghost",
        tags={"config_hash": tags["config_hash"], "host": tags["host"], "pid": "999999999"},
    )
    alive = client.create_run(
        experiment_id(client, "cifar_exp"),
        run_name="alive",
        tags={"config_hash": tags["config_hash"], "host": tags["host"], "pid": str(os.getpid())},
    )
    reused = client.create_run(  # its pid now belongs to another process: this one, started at another time
        experiment_id(client, "cifar_exp"),
        run_name="reused",
        tags={"config_hash": tags["config_hash"], "host": tags["host"], "pid": str(os.getpid()), "pid_started": "1.00"},
    )
    elsewhere = client.create_run(  # in another MLflow experiment of the same store
        experiment_id(client, "other"),
        run_name="ghost-elsewhere",
        tags={"host": tags["host"], "pid": "999999999"},
    )
    train(cfg)
    assert client.get_run(ghost.info.run_id).info.status == "KILLED"
    assert client.get_run(elsewhere.info.run_id).info.status == "KILLED"
    assert "died while RUNNING" in client.get_run(ghost.info.run_id).data.tags["error"]
    (kept,) = client.list_artifacts(ghost.info.run_id, "errors")  # stays as its history once it is resumed
    assert kept.path.endswith("-KILLED.txt")
    assert client.get_run(reused.info.run_id).info.status == "KILLED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"  # a live process is left alone
    assert float(tags["pid_started"]) > 0  # every run records when its process started


def test_failing_job_does_not_stop_the_sweep_and_rerun_skips_finished(tmp_path, npz_dir, store_uri):
    sweep = [
        "--multirun",
        *tiny(npz_dir, store_uri),
        "optimizer.lr=1e-4,1e30",
        "augmentation=none",
        "data.train_size=200",
    ]
    first = cli(tmp_path, *sweep)
    assert first.returncode != 0  # the command says that a job failed
    runs = all_runs(store_uri)
    children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert children["adam-lr1e-4-winning-none-s0"].info.status == "FINISHED"
    failed = children["adam-lr1e30-winning-none-s0"]
    assert failed.info.status == "FAILED" and "loss became" in failed.data.tags["error"]
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "FAILED" and parent.data.metrics["failed_jobs"] == 1

    (tmp_path / "same_data").symlink_to(npz_dir)  # the rerun names the same files by another path
    second = cli(tmp_path, *sweep, f"data.path={tmp_path / 'same_data'}")
    assert "already FINISHED" in second.stderr + second.stdout
    names = [r.info.run_name for r in all_runs(store_uri) if "mlflow.parentRunId" in r.data.tags]
    assert names.count("adam-lr1e-4-winning-none-s0") == 1  # skipped, not rerun
    assert names.count("adam-lr1e30-winning-none-s0") == 2  # the failed one ran again

    third = cli(tmp_path, *sweep[:-3], "optimizer.lr=1e-4", "augmentation=none", "data.train_size=200", "force=true")
    assert third.returncode == 0
    names = [r.info.run_name for r in all_runs(store_uri) if "mlflow.parentRunId" in r.data.tags]
    assert names.count("adam-lr1e-4-winning-none-s0") == 2


def test_parallel_joblib_sweep_loses_nothing(tmp_path, npz_dir, store_uri):
    done = cli(
        tmp_path,
        "--multirun",
        *tiny(npz_dir, store_uri),
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "dropout=winning,baseline",
        "augmentation=none",
        "data.train_size=200",
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = all_runs(store_uri)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    client = MlflowClient(store_uri)
    for child in children:
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 1
        assert "test_accuracy" in child.data.metrics
        assert {a.path for a in client.list_artifacts(child.info.run_id, "model")} == {"model/model.h5"}


def _killed_with_a_checkpoint(tmp_path: Path, args: list[str]):
    """A run killed with -9 after its first checkpoint: RUNNING in the store, its checkpoint on disk."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cifar_exp", *args, f"hydra.run.dir={tmp_path}/out"],
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not list((tmp_path / "checkpoints").glob("*/epoch_*.npz")) and time.time() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (run,) = all_runs(args_uri(args))
    return run


def args_uri(args: list[str]) -> str:
    return next(a.removeprefix("tracking.uri=") for a in args if a.startswith("tracking.uri="))


def test_other_data_under_the_same_config_is_never_mixed_into_a_run(tmp_path, tiny_splits):
    """Same config, other files under data.path: resume=auto leaves the run of the old data as it is (checkpoint
    included) and starts afresh; continuing that run by its id is refused, since one run would hold two datasets."""
    data = write_npz(tmp_path / "data", *tiny_splits)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = [*tiny(data, uri), "trainer.epochs=30", "data.train_size=200"]
    killed = _killed_with_a_checkpoint(tmp_path, args)
    write_npz(tmp_path / "data", make_split(per_class=4, seed=9), tiny_splits[1])  # other images, same path

    refused = cli(tmp_path, *args, f"resume={killed.info.run_id}")
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert f"run {killed.info.run_id}" in refused.stderr and "other data than the run's" in refused.stderr
    (run,) = all_runs(uri)
    assert run.info.status == "KILLED" and "resumed_at_epoch" not in run.data.tags  # nothing continued

    fresh = cli(tmp_path, *args, "resume=auto")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    said = fresh.stdout + fresh.stderr
    assert "starting afresh" in said and f"{killed.info.run_id} (KILLED), are left as they are" in said
    runs = {r.info.run_id: r for r in all_runs(uri)}
    assert len(runs) == 2 and runs[killed.info.run_id].info.status == "KILLED"
    assert "superseded" not in runs[killed.info.run_id].data.tags
    assert checkpoint.latest(tmp_path / "checkpoints" / killed.info.run_id) is not None  # still continuable


def test_a_run_another_command_is_continuing_is_not_continued_twice(tmp_path, npz_dir):
    """Two resume=auto commands at once choose the same run: the one that claims it second is told so."""
    from filelock import FileLock

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = [*tiny(npz_dir, uri), "trainer.epochs=30", "data.train_size=200"]
    killed = _killed_with_a_checkpoint(tmp_path, args)
    with FileLock(str(tmp_path / "checkpoints" / killed.info.run_id / ".claim")):  # the other command's claim
        refused = cli(tmp_path, *args, "resume=auto")
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "is being continued by another command right now" in refused.stderr
    (run,) = all_runs(uri)
    assert run.info.run_id == killed.info.run_id and "resumed_at_epoch" not in run.data.tags


def test_a_configuration_another_command_is_training_is_not_trained_twice(tmp_path, npz_dir):
    """A sweep's job whose configuration another command holds on the same data (two sweeps started together): the
    job is refused, saying so, and creates no run; once the other command lets go, the same sweep trains it. Once it
    FINISHED, a sweep beside a command that holds it (a second rerun) skips it as any rerun does."""
    from filelock import FileLock

    from cifar_exp.data import load_dataset
    from cifar_exp.identity import config_hash

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = [*tiny(npz_dir, uri), "data.train_size=200"]
    cfg = compose_config(args)
    held = f"{config_hash(cfg)}-{load_dataset(**cfg.data).fingerprint[:16]}.lock"
    (tmp_path / "checkpoints" / ".training").mkdir(parents=True)
    with FileLock(str(tmp_path / "checkpoints" / ".training" / held)):  # the other command, training it
        refused = cli(tmp_path, "--multirun", *args)
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr
    assert "this configuration is being trained on this data by another command right now" in said, said[-3000:]
    assert [r for r in all_runs(uri) if "mlflow.parentRunId" in r.data.tags] == []  # no run of the job
    again = cli(tmp_path, "--multirun", *args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len([r for r in all_runs(uri) if r.info.status == "FINISHED" and "test_accuracy" in r.data.metrics]) == 1

    with FileLock(str(tmp_path / "checkpoints" / ".training" / held)):  # another rerun of the sweep, skipping it
        beside = cli(tmp_path, "--multirun", *args)
    assert beside.returncode == 0, beside.stderr[-2000:]  # FINISHED before: skipped, not refused
    assert "already FINISHED as run" in beside.stdout + beside.stderr


def test_resume_auto_refuses_while_the_config_trains_in_a_live_process(tmp_path, npz_dir):
    """A run of this configuration is RUNNING in a process that is alive (here: this test's own): continuing
    it from another command would train one job twice."""
    from cifar_exp.tracking import client_for, process_tags

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = [*tiny(npz_dir, uri), "trainer.epochs=30", "data.train_size=200"]
    killed = _killed_with_a_checkpoint(tmp_path, args)
    client = client_for(uri)
    for key, value in process_tags().items():
        client.set_tag(killed.info.run_id, key, value)
    client.update_run(killed.info.run_id, status="RUNNING")

    refused = cli(tmp_path, *args, "resume=auto")
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert f"run {killed.info.run_id} of this configuration is RUNNING now (process {os.getpid()}" in refused.stderr
    (run,) = all_runs(uri)
    assert run.info.status == "RUNNING" and "resumed_at_epoch" not in run.data.tags  # left to its owner


@pytest.fixture()
def constructed(store_uri) -> tuple[MlflowClient, str]:
    """A store with an empty MLflow experiment "t", for runs made by hand (:func:`_run`)."""
    from cifar_exp.tracking import prepare_store

    prepare_store(store_uri)
    client = MlflowClient(store_uri)
    return client, client.create_experiment("t")


def _run(client: MlflowClient, experiment_id: str, status: str, **metrics: float) -> str:
    run = client.create_run(experiment_id, tags={"config_hash": "h"})
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_resume_auto_of_a_finished_config_skips_it_and_retires_its_stopped_run(constructed, store_uri, tmp_path):
    """A configuration stopped, then trained again to the end without resume: resume=auto must not continue the
    stopped run into a second FINISHED run of the same configuration."""
    from cifar_exp.tracking import start_job

    client, experiment_id = constructed
    stopped = _run(client, experiment_id, "KILLED")
    finished = _run(client, experiment_id, "FINISHED", test_accuracy=0.5)
    root = tmp_path / "checkpoints"
    (root / stopped).mkdir(parents=True)
    (root / stopped / "epoch_00003.npz").write_bytes(b"weights")

    job = start_job(store_uri, "t", "x", ["h"], str(root), resume="auto")

    assert job.finished_run is not None and job.finished_run.info.run_id == finished and job.resume_run_id is None
    assert not (root / stopped).exists()
    assert client.get_run(stopped).data.tags["superseded"] == f"superseded: run {finished} FINISHED this configuration"
    forced = start_job(store_uri, "t", "x", ["h"], str(root), resume="auto", force=True)
    assert forced.finished_run is None and forced.resume_run_id is None  # force=true: trained again, afresh


def test_resume_of_a_superseded_run_or_a_sweep_parent_says_why_not(constructed, store_uri, tmp_path):
    from cifar_exp.errors import ConfigError
    from cifar_exp.tracking import start_job

    client, experiment_id = constructed
    superseded = _run(client, experiment_id, "KILLED")
    client.set_tag(superseded, "superseded", "superseded: run abc FINISHED this configuration")
    with pytest.raises(ConfigError, match="it was superseded: run abc FINISHED this configuration") as raised:
        start_job(store_uri, "t", "x", ["h"], str(tmp_path), resume=superseded)
    assert "died before its first epoch" not in str(raised.value)
    parent = client.create_run(experiment_id, tags={"cifar_exp.role": "sweep"}, run_name="sweep-dropout").info.run_id
    with pytest.raises(ConfigError, match="is a sweep's parent"):
        start_job(store_uri, "t", "x", ["h"], str(tmp_path), resume=parent)


def test_resume_of_a_run_whose_checkpoint_was_removed_on_purpose_says_why(constructed, store_uri, tmp_path):
    from cifar_exp.errors import ConfigError
    from cifar_exp.tracking import start_job

    client, experiment_id = constructed
    trial = _run(client, experiment_id, "KILLED")
    client.log_param(trial, "search.trial", "1")
    with pytest.raises(ConfigError, match="it was trial 1 of a search, and a trial is not continued"):
        start_job(store_uri, "t", "x", ["h"], str(tmp_path), resume=trial)
    diverged = _run(client, experiment_id, "FAILED")
    client.set_tag(diverged, "error", "TrainingDiverged: the training loss became nan at epoch 3")
    with pytest.raises(ConfigError, match=r"it FAILED \(TrainingDiverged: the training loss became nan at epoch 3\)"):
        start_job(store_uri, "t", "x", ["h"], str(tmp_path), resume=diverged)


def test_resume_auto_chooses_among_the_runs_on_its_own_data_and_retires_no_other(constructed, store_uri, tmp_path):
    """A run on the old data got further than the run on the new data: resume=auto continues the new data's run and
    leaves the old one, checkpoint and all; a FINISHED run on the new data retires only the new data's runs."""
    from cifar_exp.tracking import start_job

    client, experiment_id = constructed
    root = tmp_path / "checkpoints"
    progress = {"old": 30, "new": 1}
    runs = {}
    for data, epochs in progress.items():
        runs[data] = _run(client, experiment_id, "KILLED")
        client.set_tag(runs[data], "dataset_fingerprint", data)
        (root / runs[data]).mkdir(parents=True)
        history = np.array(json.dumps({"loss": [1.0] * epochs}))
        np.savez(root / runs[data] / f"epoch_{epochs:05d}.npz", model_0000=np.zeros(2), history=history)

    job = start_job(store_uri, "t", "x", ["h"], str(root), resume="auto", fingerprint="new")
    assert job.resume_run_id == runs["new"] and job.resumed_fingerprint == "new"
    job.release()
    assert "superseded" not in client.get_run(runs["old"]).data.tags and (root / runs["old"]).exists()

    finished = _run(client, experiment_id, "FINISHED", test_accuracy=0.5)
    client.set_tag(finished, "dataset_fingerprint", "new")
    job = start_job(store_uri, "t", "x", ["h"], str(root), resume="auto", fingerprint="new")
    assert job.finished_run is not None and job.finished_run.info.run_id == finished
    assert "superseded" in client.get_run(runs["new"]).data.tags and not (root / runs["new"]).exists()
    assert "superseded" not in client.get_run(runs["old"]).data.tags and (root / runs["old"]).exists()


def test_a_configuration_finished_on_other_data_is_trained_again(constructed, store_uri, tmp_path):
    """The files under data.path changed since the configuration FINISHED (same config_hash, other fingerprint): a
    sweep re-run or resume=auto must train it on the new data, not skip it with the old data's result."""
    from cifar_exp.tracking import start_job

    client, experiment_id = constructed
    old_data = _run(client, experiment_id, "FINISHED", test_accuracy=0.5)
    client.set_tag(old_data, "dataset_fingerprint", "old")
    for resume in (None, "auto"):
        job = start_job(store_uri, "t", "x", ["h"], str(tmp_path), resume, sweep_dir="/s", fingerprint="new")
        assert job.finished_run is None, resume
        job.release()  # as its run would at its end
        same = start_job(store_uri, "t", "x", ["h"], str(tmp_path), resume, sweep_dir="/s", fingerprint="old")
        assert same.finished_run is not None and same.finished_run.info.run_id == old_data
