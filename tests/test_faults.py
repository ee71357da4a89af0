"""Fault injection through the real command line: each fault happens for real (a signal sent to a running
process, a full filesystem, two sweeps launched at once, a damaged checkpoint), then the test reads the final
state of every run in the store, the files left on disk and what the user saw."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from conftest import WITHOUT_TENSORFLOW, all_runs, cli, free_port, small_disk, tiny
from mlflow.tracking import MlflowClient

from cifar_exp import checkpoint

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "HYDRA_FULL_ERROR": "0"}
# What TensorFlow's C++ runtime and MLflow's store set-up print to stderr whatever happens: not ours to judge.
NOISE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl|\d{4}/\d\d/\d\d \S+ INFO mlflow)")


def said(stderr: str) -> list[str]:
    """The lines of stderr that the harness wrote."""
    return [line for line in stderr.strip().splitlines() if line and not NOISE.match(line)]


def start(tmp_path: Path, *args: str, sweep_dir: bool = True) -> subprocess.Popen:
    """``python -m cifar_exp`` in the background, its output to files (a full pipe must never block it)."""
    extra = [f"hydra.run.dir={tmp_path}/outputs"] + ([f"hydra.sweep.dir={tmp_path}/multirun"] if sweep_dir else [])
    out = open(tmp_path / f"out-{time.monotonic_ns()}.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "cifar_exp", *args, *extra],
        cwd=tmp_path,
        env=ENV,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process.log = out  # type: ignore[attr-defined]
    return process


def output(process: subprocess.Popen) -> str:
    process.log.seek(0)  # type: ignore[attr-defined]
    return process.log.read()  # type: ignore[attr-defined]


def wait_for(predicate, process: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert process.poll() is None, f"the process ended first: {output(process)[-2000:]}"
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def checkpoints(root: Path) -> list[Path]:
    return sorted(root.glob("*/epoch_*.npz"))


# Long enough that a loaded machine's test process cannot miss the moment between the first checkpoint and the end
# (with 15, one of 90 signalled runs exited 0 with eight processes on the two cores, likely finished first)
EPOCHS = 25
# The signal is sent once both joblib workers have a checkpoint; the second worker can start its job many seconds
# after the first on a loaded machine (with 40, the first job once FINISHED before the second began), so the
# parallel jobs are long enough never to end on their own first: the signal ends them either way.
PARALLEL_EPOCHS = 2000


def slow(npz_dir: Path, uri: str, epochs: int = 40) -> list[str]:
    """A tiny run long enough to be interrupted after its first checkpoint."""
    return [*tiny(npz_dir, uri), f"trainer.epochs={epochs}", "data.train_size=200", "augmentation=none"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_stop_signal_ends_the_run_killed_and_resume_continues_it(signum, tmp_path, npz_dir, store_uri):
    args = slow(npz_dir, store_uri, epochs=EPOCHS)
    root = tmp_path / "mlruns" / "checkpoints"
    process = start(tmp_path, *args)
    wait_for(lambda: checkpoints(root), process)
    process.send_signal(signum)
    process.wait(60)
    said = output(process)
    assert process.returncode == 128 + signum, said[-3000:]
    name = signal.Signals(signum).name
    assert f"error: stopped by {name}" in said and "resume=auto" in said and "Traceback" not in said
    (run,) = all_runs(store_uri)
    assert run.info.status == "KILLED" and run.data.tags["error"] == f"stopped by {name}"
    (kept,) = checkpoints(root)
    assert checkpoint.latest(kept.parent).epochs_done >= 1  # intact, and readable
    assert not list(root.glob("*/.*.partial"))
    if signum != signal.SIGTERM:
        return  # how the run is continued does not depend on the signal that stopped it

    (tmp_path / "same_data").symlink_to(npz_dir)  # continued with its data named by another path
    done = cli(tmp_path, *args, f"data.path={tmp_path / 'same_data'}", "resume=auto")
    assert done.returncode == 0, done.stderr[-2000:]
    (resumed,) = all_runs(store_uri)
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    assert "error" not in resumed.data.tags  # the interruption is not left behind as a stale error
    (interruption,) = MlflowClient(store_uri).list_artifacts(run.info.run_id, "errors")  # but kept as history
    assert interruption.path.endswith("-KILLED.txt")
    history = MlflowClient(store_uri).get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(EPOCHS))


def test_a_second_signal_just_after_the_first_changes_nothing(tmp_path, npz_dir, store_uri):
    process = start(tmp_path, *slow(npz_dir, store_uri))
    wait_for(lambda: checkpoints(tmp_path / "mlruns" / "checkpoints"), process)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # an impatient Ctrl-C
    process.wait(60)
    said = output(process)
    # The first signal handled wins: SIGTERM, unless both were still pending when Python ran its handlers (a busy
    # machine, the main thread inside one long TensorFlow call), which it then runs in signal-number order.
    (first,) = [s for s in (signal.SIGTERM, signal.SIGINT) if f"error: stopped by {s.name}; run" in said] or [None]
    assert first is not None and said.count("error: stopped by") == 1, said[-3000:]
    assert process.returncode == 128 + first and "Traceback" not in said and "OSError" not in said, said[-3000:]
    (run,) = all_runs(store_uri)
    assert run.info.status == "KILLED" and run.data.tags["error"] == f"stopped by {first.name}"


def test_sigterm_during_a_sweep_closes_the_parent_too(tmp_path, npz_dir, store_uri):
    process = start(tmp_path, "--multirun", *slow(npz_dir, store_uri), "dropout=winning,baseline")
    wait_for(lambda: checkpoints(tmp_path / "mlruns" / "checkpoints"), process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 143
    runs = all_runs(store_uri)
    (parent,) = [r for r in runs if r.data.tags.get("cifar_exp.role") == "sweep"]
    (child,) = [r for r in runs if r is not parent]
    assert parent.info.status == "KILLED" and "stopped by SIGTERM" in parent.data.tags["error"]
    assert child.info.status == "KILLED" and child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "any jobs still queued at the stop were not started" in parent.data.tags["mlflow.note.content"]


def test_sigterm_to_a_joblib_sweep_ends_every_job_and_the_parent_killed(tmp_path, npz_dir, store_uri):
    """The workers end their own runs and return; joblib must not kill one while it records its end."""
    sweep = [
        *slow(npz_dir, store_uri, epochs=PARALLEL_EPOCHS),
        "dropout=winning,baseline,report_exp3",
        "hydra/launcher=joblib",
    ]
    process = start(tmp_path, "--multirun", *sweep, "hydra.launcher.n_jobs=2")
    wait_for(lambda: len(checkpoints(tmp_path / "mlruns" / "checkpoints")) == 2, process)
    process.send_signal(signal.SIGTERM)
    process.wait(90)
    said = output(process)
    assert process.returncode == 143, said[-3000:]
    assert "error: stopped by SIGTERM" in said and "Traceback" not in said
    runs = all_runs(store_uri)
    (parent,) = [r for r in runs if r.data.tags.get("cifar_exp.role") == "sweep"]
    children = [r for r in runs if r is not parent]
    assert parent.info.status == "KILLED" and "stopped by SIGTERM" in parent.data.tags["error"]
    assert len(children) == 2, "the third job, still queued, is not started"
    assert [c.info.status for c in children] == ["KILLED", "KILLED"]
    assert all(c.data.tags["error"] == "stopped by SIGTERM" for c in children)


def test_kill_9_of_a_joblib_sweep_takes_its_workers_with_it(tmp_path, npz_dir, store_uri):
    """SIGKILL cannot be passed on: each worker notices its parent is gone, ends its run KILLED with its
    checkpoint (as a SIGTERM would) and exits, instead of training on, alone, into the store."""
    import psutil

    sweep = [
        *slow(npz_dir, store_uri, epochs=PARALLEL_EPOCHS),
        "dropout=winning,baseline,report_exp3",
        "hydra/launcher=joblib",
    ]
    process = start(tmp_path, "--multirun", *sweep, "hydra.launcher.n_jobs=2")
    wait_for(lambda: len(checkpoints(tmp_path / "mlruns" / "checkpoints")) == 2, process)
    workers = [
        w
        for w in psutil.Process(process.pid).children(recursive=True)
        if "resource_tracker" not in " ".join(w.cmdline())
    ]
    assert len(workers) >= 2
    process.kill()
    process.wait()
    gone, alive = psutil.wait_procs(workers, timeout=90)
    assert not alive, [w.cmdline() for w in alive]
    children = [r for r in all_runs(store_uri) if r.data.tags.get("cifar_exp.role") != "sweep"]
    assert len(children) == 2 and [c.info.status for c in children] == ["KILLED", "KILLED"]
    assert all(c.data.tags["error"] == "stopped by SIGTERM" for c in children)
    assert len(checkpoints(tmp_path / "mlruns" / "checkpoints")) == 2  # resume=auto continues both


def test_a_killed_sweep_rerun_leaves_one_coherent_record(tmp_path, npz_dir, store_uri):
    """kill -9 leaves the sweep's parent and its job RUNNING; the re-run with resume=auto closes the old parent
    (KILLED, saying why), continues the job under the new parent and notes the job it skipped."""
    sweep = ["--multirun", *slow(npz_dir, store_uri, epochs=EPOCHS), "dropout=winning,baseline"]
    first = cli(tmp_path, *sweep[:-1], "dropout=winning")  # one job FINISHED under a first parent
    assert first.returncode == 0, first.stderr[-2000:]
    process = start(tmp_path, *sweep[:-1], "dropout=baseline", sweep_dir=False)
    wait_for(lambda: len(checkpoints(tmp_path / "mlruns" / "checkpoints")) == 1, process)
    process.kill()
    process.wait()

    again = cli(tmp_path, *sweep, "resume=auto")
    assert again.returncode == 0, again.stderr[-2000:]
    runs = {r.info.run_id: r for r in all_runs(store_uri)}
    parents = [r for r in runs.values() if r.data.tags.get("cifar_exp.role") == "sweep"]
    assert len(parents) == 3 and not [r for r in runs.values() if r.info.status == "RUNNING"]
    killed = [p for p in parents if p.info.status == "KILLED"]
    assert len(killed) == 1 and "died while RUNNING" in killed[0].data.tags["error"]
    newest = max(parents, key=lambda p: p.info.start_time)
    assert newest.info.status == "FINISHED"
    (resumed,) = [r for r in runs.values() if r.data.tags.get("resumed_from_sweep")]
    assert resumed.data.tags["resumed_from_sweep"] == killed[0].info.run_id
    assert resumed.data.tags["mlflow.parentRunId"] == newest.info.run_id and resumed.info.status == "FINISHED"
    (finished,) = [r for r in runs.values() if r.info.run_name == "adam-lr1e-4-winning-none-s0"]
    assert newest.data.tags[f"cifar_exp.skipped.{finished.info.run_id}"] == "adam-lr1e-4-winning-none-s0"
    assert "skipped" in newest.data.tags["mlflow.note.content"]


def test_a_second_sweep_in_the_folder_of_a_running_one_is_refused(tmp_path, npz_dir, store_uri):
    """Jobs find their parent by the sweep's folder: a second sweep given the same explicit hydra.sweep.dir
    would hang its jobs under the first one's parent. It is refused before anything starts."""
    first = start(tmp_path, "--multirun", *slow(npz_dir, store_uri), "dropout=winning,baseline")
    wait_for(lambda: len(checkpoints(tmp_path / "mlruns" / "checkpoints")) == 1, first)
    second = cli(tmp_path, "--multirun", *tiny(npz_dir, store_uri), "dropout=none,report_exp3")
    first.send_signal(signal.SIGTERM)
    first.wait(90)
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"hydra.sweep.dir={tmp_path / 'multirun'} is the folder of sweep-dropout" in second.stderr
    assert "nothing was started" in second.stderr and "Traceback" not in second.stderr
    runs = all_runs(store_uri)
    assert len([r for r in runs if r.data.tags.get("cifar_exp.role") == "sweep"]) == 1
    assert {r.data.params.get("dropout.name") for r in runs} <= {None, "winning", "baseline"}


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh store", "existing store"])
def test_two_sweeps_started_at_once_each_get_their_own_parent(fresh, tmp_path, npz_dir, store_uri):
    if not fresh:
        assert cli(tmp_path, *tiny(npz_dir, store_uri), "data.train_size=200").returncode == 0
    args = ["--multirun", *tiny(npz_dir, store_uri), "data.train_size=200", "augmentation=none"]
    first = start(tmp_path, *args, "dropout=winning,baseline", sweep_dir=False)  # default folders: same second
    second = start(tmp_path, *args, "dropout=none,report_exp3", sweep_dir=False)
    assert first.wait(400) == 0, output(first)[-2000:]
    assert second.wait(400) == 0, output(second)[-2000:]
    runs = all_runs(store_uri)
    parents = [r for r in runs if r.data.tags.get("cifar_exp.role") == "sweep"]
    assert len(parents) == 2 and len({p.data.tags["cifar_exp.sweep_dir"] for p in parents}) == 2
    for parent in parents:
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(children) == 2 and parent.info.status == "FINISHED"
        assert parent.data.metrics["jobs"] == 2


def test_resume_auto_continues_the_run_with_most_progress_and_retires_the_others(tmp_path, npz_dir, store_uri):
    args = slow(npz_dir, store_uri, epochs=EPOCHS)
    root = tmp_path / "mlruns" / "checkpoints"
    process = start(tmp_path, *args)
    wait_for(lambda: any(p.name == "epoch_00002.npz" for p in checkpoints(root)), process)
    process.kill()
    process.wait()
    (further,) = all_runs(store_uri)
    client = MlflowClient(store_uri)
    behind = client.create_run(
        further.info.experiment_id,
        run_name="behind",
        tags={**{k: further.data.tags[k] for k in ("config_hash", "host")}, "pid": "999999999"},
    )
    (root / behind.info.run_id).mkdir()
    shutil.copy(root / further.info.run_id / "epoch_00002.npz", root / behind.info.run_id / "epoch_00001.npz")

    done = cli(tmp_path, *args, "resume=auto")
    assert done.returncode == 0, done.stderr[-2000:]
    assert client.get_run(further.info.run_id).info.status == "FINISHED"  # not the newest: the one further on
    retired = client.get_run(behind.info.run_id)
    assert retired.info.status == "KILLED" and f"continued run {further.info.run_id}" in retired.data.tags["superseded"]
    assert not (root / behind.info.run_id).exists()


def test_damaged_checkpoint_is_named_and_does_not_block_resume_auto(tmp_path, npz_dir, store_uri):
    args = slow(npz_dir, store_uri, epochs=EPOCHS)
    root = tmp_path / "mlruns" / "checkpoints"
    process = start(tmp_path, *args)
    wait_for(lambda: checkpoints(root), process)
    process.kill()
    process.wait()
    (damaged,) = checkpoints(root)
    damaged.write_bytes(damaged.read_bytes()[:1000])
    (run,) = all_runs(store_uri)

    named = cli(tmp_path, *args, f"resume={run.info.run_id}")
    assert named.returncode == 2 and "Traceback" not in named.stderr
    assert f"the checkpoint {damaged} is truncated or corrupt" in named.stderr and "rm -r" in named.stderr

    auto = cli(tmp_path, *args, "resume=auto")
    assert auto.returncode == 0, auto.stderr[-2000:]
    runs = {r.info.run_id: r for r in all_runs(store_uri)}
    assert len(runs) == 2 and runs[run.info.run_id].info.status == "KILLED"
    assert "could not be read" in runs[run.info.run_id].data.tags["superseded"]
    assert not damaged.parent.exists()


def test_a_run_stopped_while_recording_finishes_without_logging_twice(tmp_path, npz_dir, store_uri, monkeypatch):
    from conftest import compose_config

    from cifar_exp.tracking import Run
    from cifar_exp.train import train

    cfg = compose_config([*tiny(npz_dir, store_uri), "trainer.epochs=2", "data.train_size=200"])
    real = Run.log_figure

    def disk_full(self, figure, artifact_file):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Run, "log_figure", disk_full)
    with pytest.raises(OSError):
        train(cfg)
    (failed,) = all_runs(store_uri)
    assert failed.info.status == "FAILED" and "test_accuracy" in failed.data.metrics
    monkeypatch.setattr(Run, "log_figure", real)
    cfg.resume = "auto"
    train(cfg)
    (run,) = all_runs(store_uri)
    assert run.info.run_id == failed.info.run_id and run.info.status == "FINISHED" and "error" not in run.data.tags
    client = MlflowClient(store_uri)
    assert len(client.get_metric_history(run.info.run_id, "test_accuracy")) == 1
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 2
    models = client.search_logged_models([run.info.experiment_id], f"source_run_id = '{run.info.run_id}'")
    assert [str(m.status) for m in models] == ["READY"]  # the first attempt's model is not left beside it


def _fill(folder: Path) -> None:
    with open(folder / "filler", "wb") as filler, pytest.raises(OSError):
        while True:
            filler.write(b"\0" * 65536)


def test_full_disk_for_checkpoints_fails_the_run_cleanly(tmp_path, npz_dir, store_uri):
    """Filling up during the run: the run is FAILED, no half-written checkpoint is left filling the disk."""
    with small_disk(tmp_path / "small", "2m") as small:
        done = cli(tmp_path, *slow(npz_dir, store_uri, epochs=2), f"trainer.checkpoint_dir={small}")
        left = [p for p in small.rglob("*") if p.name.endswith(".partial") or p.suffix == ".npz"]
    assert done.returncode == 2 and "no space left on the device" in done.stderr
    assert "Traceback" not in done.stderr and len(said(done.stderr)) == 1, said(done.stderr)
    assert left == []  # no .partial file left filling the disk (and no checkpoint could be completed)
    (run,) = all_runs(store_uri)
    assert run.info.status == "FAILED" and run.data.tags["error"].startswith("no space left on the device (")


@pytest.mark.parametrize("where", ["checkpoints", "store"])
def test_a_disk_full_before_the_run_is_said_before_any_work(tmp_path, npz_dir, store_uri, where):
    """A full disk under trainer.checkpoint_dir or under the store is one paragraph before TensorFlow starts, and
    no run is opened that could not be closed (a full store would keep it RUNNING until the disk had room)."""
    from cifar_exp.tracking import prepare_store

    with small_disk(tmp_path / "small", "2m") as small:
        if where == "store":
            uri = f"sqlite:///{small}/mlflow.db"
            prepare_store(uri)  # an existing store with room, then the disk fills
            _fill(small)
            args = [*tiny(npz_dir, uri), f"trainer.checkpoint_dir={tmp_path}/checkpoints"]
        else:
            _fill(small)
            args = [*tiny(npz_dir, store_uri), f"trainer.checkpoint_dir={small}/checkpoints"]
        done = subprocess.run(
            [sys.executable, "-c", WITHOUT_TENSORFLOW, *args, f"hydra.run.dir={tmp_path}/outputs"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 2 and "was imported before the error" not in done.stderr, done.stderr[-2000:]
        setting = "tracking.uri=sqlite:///" if where == "store" else "trainer.checkpoint_dir="
        (line,) = said(done.stderr)
        assert line.startswith(f"error: {setting}{small}") and f"the disk holding {small} is full (" in line, line
        assert all_runs(args[2].removeprefix("tracking.uri=")) == []


def test_full_disk_for_the_store_too_is_closed_by_the_next_command(tmp_path, npz_dir):
    with small_disk(tmp_path / "small", "3m") as small:
        uri = f"sqlite:///{small}/mlflow.db"
        done = cli(tmp_path, *slow(npz_dir, uri, epochs=2))
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
        assert "error: no space left on the device" in done.stderr
        assert "[SQL:" not in done.stdout + done.stderr  # the store's statement is not part of what is said
        assert not list(small.rglob("*.partial"))
        shutil.rmtree(small / "checkpoints", ignore_errors=True)
        shutil.rmtree(small / "artifacts", ignore_errors=True)
        (run,) = all_runs(uri)
        if run.info.status == "RUNNING":  # the store could not be written either: the next command closes it
            later = cli(tmp_path, *tiny(npz_dir, uri), "data.train_size=200", "trainer.epochs=1", "seed=5")
            assert later.returncode == 0, later.stderr[-2000:]
            run = MlflowClient(uri).get_run(run.info.run_id)
            assert run.info.status == "KILLED" and "died while RUNNING" in run.data.tags["error"]
        else:
            assert run.info.status == "FAILED" and run.data.tags["error"].startswith("no space left on the device (")


def test_full_disk_for_the_artifacts_names_where_it_was_writing(tmp_path, npz_dir, store_uri):
    """The store's database has room, its artifact folder not: the paragraph names the file the artifact was
    going to (not the temporary file it was copied from) and the run is FAILED with both in its error tag."""
    artifacts = Path(store_uri.removeprefix("sqlite:///")).parent / "artifacts"
    with small_disk(artifacts, "300k"):
        done = cli(tmp_path, *tiny(npz_dir, store_uri))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = said(done.stderr)
    assert line.startswith(f"error: no space left on the device while writing {artifacts}/"), line
    (run,) = all_runs(store_uri)
    assert run.info.status == "FAILED" and run.data.tags["error"].startswith("no space left on the device (")


def test_malformed_sweep_override_is_named(tmp_path, npz_dir, store_uri):
    done = cli(tmp_path, "--multirun", *tiny(npz_dir, store_uri), "dropout=winning,")
    assert done.returncode == 2 and "cannot parse the override 'dropout=winning,'" in done.stderr
    assert not Path(store_uri.removeprefix("sqlite:///")).exists()


def test_coarse_labels_are_named_and_never_beside_the_reports_figure(tmp_path, npz_dir, store_uri):
    done = cli(
        tmp_path,
        *tiny(npz_dir, store_uri),
        "+experiment=winning",
        "data.label_mode=coarse",
        "trainer.epochs=1",
        "data.train_size=200",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = all_runs(store_uri)
    assert run.info.run_name.endswith("-coarse") and "report_test_accuracy" not in run.data.tags
    assert "2017 report" not in run.data.tags["mlflow.note.content"]


# Other commands and other stores: one paragraph on stderr, a non-zero exit, no traceback


def report(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cifar_exp.report", *args],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_paragraph(done: subprocess.CompletedProcess, text: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    lines = said(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], lines
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory, npz_dir) -> str:
    tmp_path = tmp_path_factory.mktemp("finished")
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    done = cli(
        tmp_path,
        "--multirun",
        *tiny(npz_dir, uri),
        "+experiment=dropout",
        "dropout=winning,baseline",
        "data.train_size=200",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return uri


def test_report_errors_are_one_paragraph(tmp_path, finished_store):
    one_paragraph(report(tmp_path, "nosuch", "--uri", finished_store), "unknown experiment 'nosuch'")
    one_paragraph(
        report(tmp_path, "dropout", "--uri", finished_store, "--sweep", "0123abcd"), "--sweep 0123abcd: no such run"
    )
    missing = tmp_path / "nowhere" / "mlflow.db"
    one_paragraph(report(tmp_path, "dropout", "--uri", f"sqlite:///{missing}"), "there is no such file")
    one_paragraph(
        report(tmp_path, "--all", "--uri", finished_store, "--also-from", f"sqlite:///{missing}"),
        "there is no such file",
    )
    assert not missing.parent.exists()  # a reader creates nothing


def test_report_on_a_read_only_store_still_prints_the_table(tmp_path, finished_store):
    source = Path(finished_store.removeprefix("sqlite:///")).parent
    with small_disk(tmp_path / "ro", "64m") as ro:
        shutil.copytree(source, ro, dirs_exist_ok=True)
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        done = report(tmp_path, "dropout", "--uri", f"sqlite:///{ro}/mlflow.db")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| configuration |" in done.stdout and "not logged to the store" in done.stdout


def test_stores_that_are_not_mlflow_stores_are_refused(tmp_path, npz_dir, finished_store):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    one_paragraph(cli(tmp_path, *tiny(npz_dir, f"sqlite:///{garbage}")), "is not a SQLite database")

    newer = tmp_path / "newer.db"
    shutil.copy(finished_store.removeprefix("sqlite:///"), newer)
    with sqlite3.connect(newer) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    one_paragraph(cli(tmp_path, *tiny(npz_dir, f"sqlite:///{newer}")), "written by a newer MLflow")

    class NotMlflow(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", free_port()), NotMlflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}"
        one_paragraph(cli(tmp_path, *tiny(npz_dir, uri)), "not as an MLflow tracking server")
    finally:
        server.shutdown()


def test_ui_errors_are_one_paragraph(tmp_path, finished_store):
    def ui(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "cifar_exp.cli", "ui", *args],
            cwd=tmp_path,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    one_paragraph(
        ui("--backend-store-uri", f"sqlite:///{garbage}", "--port", str(free_port())), "is not a SQLite database"
    )
    with __import__("socket").socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_paragraph(ui("--backend-store-uri", finished_store, "--port", str(port)), f"127.0.0.1:{port}")


def test_a_diverged_run_fails_and_leaves_no_checkpoint_to_continue(tmp_path, npz_dir, store_uri):
    """A NaN loss fails the run; its checkpoints would only diverge again (and the epoch the NaN cut short held NaN
    weights), so none is kept and resume=auto starts the configuration afresh."""
    diverging = [*tiny(npz_dir, store_uri), "trainer.epochs=3", "optimizer=sgd", "optimizer.lr=1e30"]
    done = cli(tmp_path, *diverging)
    assert done.returncode != 0 and "loss became nan" in done.stderr, done.stderr[-3000:]
    (run,) = all_runs(store_uri)
    assert run.info.status == "FAILED"
    assert not (Path(store_uri.removeprefix("sqlite:///")).parent / "checkpoints" / run.info.run_id).exists()
