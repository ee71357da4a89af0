"""The sweep callback's parent run: named after the experiment or the swept keys; opened and closed around
the jobs (end to end in test_main.py, test_faults.py and test_launchers.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import all_runs, cli, compose_config, tiny
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
        (
            "trainer.batch_size=32,${oops}",
            "is not a valid run: trainer.batch_size: Interpolation key 'oops' not found",
        ),
        (
            "resume=0123456789abcdef0123456789abcdef",
            "resume=0123456789abcdef0123456789abcdef continues that one run, not the jobs of a sweep",
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


@pytest.mark.parametrize("bad", ["truncated", "too_small"])
def test_a_bad_dataset_for_any_job_stops_the_sweep_before_any_job_or_run(tmp_path, npz_dir, store_uri, bad):
    """Each job's dataset is loaded once before the sweep starts: a damaged copy or a subset too small for one
    job is one paragraph, and no job trains (the jobs before it would have, and the parent said FINISHED)."""
    if bad == "truncated":
        broken = tmp_path / "broken"
        shutil.copytree(npz_dir, broken)
        (broken / "test.npz").write_bytes((broken / "test.npz").read_bytes()[:500])
        swept, said = f"data.path={npz_dir},{broken}", f"{broken / 'test.npz'} is truncated or corrupt"
    else:
        swept, said = "data.train_size=300,50", "data.train_size=50 is fewer images than the 100 classes"
    done = cli(tmp_path, "--multirun", *tiny(npz_dir, store_uri), "trainer.epochs=1", swept)
    assert done.returncode == 2 and "job #1 of the 2 in this sweep" in done.stderr, done.stderr[-2000:]
    assert said in done.stderr and "No job was started and nothing was logged." in done.stderr
    assert "Traceback" not in done.stderr
    assert not Path(store_uri.removeprefix("sqlite:///")).exists()


def _held_by_a_live_process(store_uri: str, *jobs: list[str]) -> None:
    """A RUNNING run of each job's configuration, owned by this (live) test process: resume=auto refuses to start
    those jobs, which it knows only once the store is read, before their runs exist."""
    from mlflow.tracking import MlflowClient

    from cifar_exp.identity import config_hash
    from cifar_exp.tracking import prepare_store, process_tags

    prepare_store(store_uri)
    client = MlflowClient(store_uri)
    for overrides in jobs:
        cfg = compose_config(overrides)
        found = client.get_experiment_by_name(cfg.tracking.experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(cfg.tracking.experiment)
        client.create_run(experiment_id, tags={"config_hash": config_hash(cfg), **process_tags()})


def test_jobs_that_fail_before_their_run_exists_fail_the_sweep_and_are_named(tmp_path, npz_dir, store_uri):
    """A job refused at its start (here resume=auto of a configuration a live process trains, known only once the
    store is read) has no run of its own: each is said as it fails and recorded on the parent, which ends FAILED."""
    common = [*tiny(npz_dir, store_uri), "trainer.epochs=1"]
    _held_by_a_live_process(store_uri, [*common, "dropout=winning"], [*common, "dropout=baseline"])
    done = cli(tmp_path, "--multirun", *common, "dropout=winning,baseline", "resume=auto")
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "error: job #0 failed (said above); the sweep's parent run lists every failed job and why." in done.stderr
    for number, dropout in ((0, "winning"), (1, "baseline")):
        assert f"error: job #{number} (" in done.stderr and f"dropout={dropout}" in done.stderr, done.stderr[-3000:]
    (parent,) = [r for r in all_runs(store_uri) if r.data.tags.get("cifar_exp.role") == "sweep"]
    assert parent.info.status == "FAILED" and parent.data.metrics["failed_jobs"] == 2
    assert parent.data.metrics["jobs"] == 2 and "#0 (" in parent.data.tags["mlflow.note.content"]
    assert "of this configuration is RUNNING now" in parent.data.tags["mlflow.note.content"]


def test_a_joblib_sweep_with_a_failing_job_finishes_the_others(tmp_path, npz_dir, store_uri):
    """The failed job's error comes back from its worker pickled; it must arrive whole, or joblib breaks its pool
    and kills the healthy jobs mid-training."""
    common = [*tiny(npz_dir, store_uri), "trainer.epochs=1"]
    _held_by_a_live_process(store_uri, [*common, "seed=1"])
    done = cli(
        tmp_path,
        "--multirun",
        *common,
        "seed=0,1",
        "resume=auto",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "error: job #1 (" in done.stderr and "of this configuration is RUNNING now" in done.stderr
    runs = all_runs(store_uri)
    (parent,) = [r for r in runs if r.data.tags.get("cifar_exp.role") == "sweep"]
    (healthy,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert healthy.info.status == "FINISHED"
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["jobs"] == 2 and parent.data.metrics["failed_jobs"] == 1


def test_a_failed_jobs_error_survives_the_trip_back_from_a_worker():
    import pickle

    from cifar_exp.errors import JobFailed

    back = pickle.loads(pickle.dumps(JobFailed("data.path=x: no such folder", 3)))
    assert (back.said, back.job_num) == ("data.path=x: no such folder", 3) and "job #3 failed" in str(back)


def test_a_parent_the_store_cannot_close_is_said_in_one_line_once(monkeypatch, capsys, tmp_path):
    """A server gone by the sweep's end: one line naming the parent, not a traceback at exit, and not twice
    (the callback closes after the last job and again at exit)."""
    from mlflow.exceptions import MlflowException

    from cifar_exp import tracking

    calls = []

    def gone(*args, **kwargs):
        calls.append(args)
        raise MlflowException("API request to endpoint /api/2.0/mlflow/runs/get failed with exception")

    monkeypatch.setattr(tracking, "close_sweep_parent", gone)
    callback = MlflowSweepCallback()
    callback.parent_run_id, callback.uri, callback.sweep_dir = "abc", "http://user:pw@127.0.0.1:9", tmp_path
    callback.on_multirun_end(OmegaConf.create({}))
    callback._close()  # at exit
    err = capsys.readouterr().err
    assert len(calls) == 1 and err.count("error: ") == 1
    assert err.startswith("error: the sweep's parent run abc could not be closed in http://user:***@127.0.0.1:9 (")
    assert err.rstrip().endswith("the next command on this store closes it.")


def test_jobs_failed_by_the_store_do_not_each_wait_on_it_to_record_their_failure(monkeypatch, capsys):
    """A server gone mid-sweep fails every job left; recording each failure on the parent would wait out MLflow's
    retries once per job (30 s each): a job the store failed, or any job after a record that failed, is said
    only."""
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.types import RunMode
    from mlflow.exceptions import MlflowException

    from cifar_exp import tracking
    from cifar_exp.errors import JobFailed

    asked = []

    def unreachable(*args):
        asked.append(args)
        raise MlflowException("API request to endpoint /api/2.0/mlflow/runs/search failed with exception")

    monkeypatch.setattr(tracking, "find_sweep_parent", unreachable)
    callback = MlflowSweepCallback()

    def job(num: int, error: BaseException) -> None:
        config = OmegaConf.create(
            {
                "hydra": {
                    "mode": "MULTIRUN",
                    "job": {"num": num},
                    "overrides": {"task": [f"seed={num}"]},
                    "sweep": {"dir": "/tmp/s"},
                },
                "tracking": {"enabled": True, "uri": "http://127.0.0.1:9", "experiment": "e"},
            }
        )
        config.hydra.mode = RunMode.MULTIRUN
        returned = JobReturn(status=JobStatus.FAILED, _return_value=error)
        callback.on_job_end(config, returned)

    try:
        raise JobFailed("the tracking store failed", 0) from MlflowException("API request to ... failed")
    except JobFailed as by_the_store:
        job(0, by_the_store)
    job(1, ValueError("a bug"))  # tries to record: the store fails
    job(2, ValueError("a bug"))  # not tried again
    assert len(asked) == 1
    assert capsys.readouterr().err.count("error: job #") == 3


@pytest.mark.parametrize("at_exit", [False, True], ids=["after the last job", "at exit only"])
def test_a_sweep_closed_only_at_exit_without_a_failed_job_is_failed(at_exit, tmp_path, store_uri):
    """Hydra never reached on_multirun_end (the sweeper or launcher raised) and no job failed: the callback's exit
    close ends the parent FAILED; closed after the last job, the same parent ends FINISHED."""
    from mlflow.tracking import MlflowClient

    from cifar_exp.tracking import open_sweep_parent, tracked_run

    parent = open_sweep_parent(store_uri, "t", str(tmp_path), "sweep-x", ["a=1,2"])
    with tracked_run(store_uri, "t", "one", parent_run_id=parent) as run:
        run.log_metrics({"test_accuracy": 0.2})
    callback = MlflowSweepCallback()
    callback.parent_run_id, callback.uri, callback.sweep_dir = parent, store_uri, tmp_path
    if at_exit:
        callback._close(at_exit=True)
    else:
        callback.on_multirun_end(OmegaConf.create({}))
    stored = MlflowClient(store_uri).get_run(parent)
    assert stored.info.status == ("FAILED" if at_exit else "FINISHED")
    assert ("error outside its jobs" in stored.data.tags.get("error", "")) == at_exit
