from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from cifar_exp.errors import TrackingError
from cifar_exp.signals import Stopped
from cifar_exp.tracking import (
    TAG_JOB_NUM,
    close_sweep_parent,
    flatten,
    note_failed_job,
    note_skipped_job,
    open_sweep_parent,
    prepare_store,
    tracked_run,
)


def _runs(uri):
    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_finished_run(store_uri):
    with tracked_run(store_uri, "t", "ok") as run:
        run.log_metrics({"loss": 1.0}, step=0)
        run.log_params({"a.b": 1})
    (stored,) = _runs(store_uri)
    assert stored.info.status == "FINISHED" and stored.data.params == {"a.b": "1"}


def test_exception_marks_failed_with_reason(store_uri):
    with pytest.raises(ZeroDivisionError), tracked_run(store_uri, "t", "boom"):
        1 / 0
    (stored,) = _runs(store_uri)
    assert stored.info.status == "FAILED" and "ZeroDivisionError" in stored.data.tags["error"]


def test_ctrl_c_marks_killed(store_uri):
    with pytest.raises(KeyboardInterrupt), tracked_run(store_uri, "t", "stop"):
        raise KeyboardInterrupt
    assert _runs(store_uri)[0].info.status == "KILLED"


def test_a_stop_the_store_cannot_record_still_ends_as_the_stop_saying_so(store_uri):
    """The user sees the stop and where its record went missing, not the store's error."""
    stop = Stopped(signal.SIGTERM)
    with pytest.raises(Stopped) as raised, tracked_run(store_uri, "t", "stop") as run:

        def locked(*args, **kwargs):
            raise MlflowException("(sqlite3.OperationalError) database is locked")

        run.client.set_terminated = locked  # type: ignore[method-assign]
        raise stop
    assert raised.value is stop
    assert "could not mark run" in stop.explain() and "database is locked" in stop.explain()
    assert _runs(store_uri)[0].data.tags["error"] == "stopped by SIGTERM"


def test_a_store_back_before_the_status_is_written_gets_the_reason_too(store_uri, monkeypatch):
    """A server restarting as a run fails: the reason's first write fails, the status goes through; the reason
    is written after it, so the FAILED run is not left without one."""
    from cifar_exp.tracking import Run

    real, attempts = Run.set_tags, []

    def down_once(self, tags):
        attempts.append(tags)
        if len(attempts) == 1:
            raise MlflowException("API request to endpoint /api/2.0/mlflow/runs/set-tag failed with exception")
        real(self, tags)

    with pytest.raises(ZeroDivisionError), tracked_run(store_uri, "t", "boom") as run:
        monkeypatch.setattr(Run, "set_tags", down_once)
        1 / 0
    (stored,) = _runs(store_uri)
    assert stored.info.status == "FAILED" and "ZeroDivisionError" in stored.data.tags["error"]
    assert [a.path for a in MlflowClient(store_uri).list_artifacts(run.run_id, "errors")]


def test_a_stop_while_the_run_opens_names_the_run(store_uri, tmp_path, monkeypatch):
    """The stop lands inside the opening (held until the run exists): the run is KILLED and the message names
    it, though the job never got to see it."""
    import os

    from cifar_exp import signals
    from cifar_exp.tracking import job, run

    opened = run.open_run

    def signalled_while_opening(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return opened(*args, **kwargs)

    saved = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    monkeypatch.setattr(signals, "received", None)
    monkeypatch.setattr(run, "open_run", signalled_while_opening)
    started = job.start_job(store_uri, "t", "opening", ["hash"], str(tmp_path / "checkpoints"))
    signals.install()
    try:
        with pytest.raises(Stopped) as raised, started.open({}):
            pytest.fail("the job must not start")
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    (stored,) = _runs(store_uri)
    assert stored.info.status == "KILLED" and raised.value.run_id == stored.info.run_id
    assert f"run {stored.info.run_id} (opening) is KILLED" in raised.value.explain()
    assert "the same command starts it afresh" in raised.value.explain()


def test_disabled_tracking_logs_nothing(store_uri):
    with tracked_run(None, "t", "off") as run:
        run.log_metrics({"x": 1.0})
        assert not run.enabled


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(TrackingError, match="does not answer") as raised:
        prepare_store("http://127.0.0.1:9")
    said = str(raised.value)
    assert said.startswith("tracking.uri=http://127.0.0.1:9:") and "Connection refused" in said
    assert "HTTPConnectionPool" not in said and "Max retries" not in said  # urllib3's wrapping, not the reason


def test_a_store_given_on_a_command_line_is_named_by_its_flag():
    with pytest.raises(TrackingError) as raised:
        prepare_store("http://127.0.0.1:9", setting="--uri")
    said = str(raised.value)
    assert said.startswith("--uri=http://127.0.0.1:9:") and "use the local store by leaving out --uri" in said


def test_unwritable_store_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TrackingError, match="not writable"):
        prepare_store(f"sqlite:///{blocker}/sub/mlflow.db")


def test_read_only_store_file_is_a_clear_error(tmp_path):
    """A writable folder holding a read-only store passed the check; the command then loaded TensorFlow and failed
    creating the run, saying its (never created) run was FAILED and its checkpoints kept."""
    import os
    import subprocess

    db = tmp_path / "mlflow.db"
    prepare_store(f"sqlite:///{db}")
    db.chmod(0o444)
    immutable = os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode == 0
    try:
        if os.access(db, os.W_OK):
            pytest.skip("cannot make a file read-only here (root without chattr)")
        with pytest.raises(TrackingError, match=f"the store {db} is not writable"):
            prepare_store(f"sqlite:///{db}")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(db)])
        db.chmod(0o644)


def test_a_deleted_experiment_is_said_before_any_work(store_uri, tmp_path):
    """A deleted experiment was found by name and its id used: the run could not be created, which the command
    learned only after loading the data and TensorFlow, and said as a store failure with a FAILED run to continue."""
    from cifar_exp.tracking import start_job

    client = MlflowClient(store_uri)
    client.delete_experiment(client.create_experiment("gone"))
    with pytest.raises(TrackingError, match="tracking.experiment=gone: that experiment is deleted"):
        start_job(store_uri, "gone", "a-run", ["hash"], str(tmp_path / "checkpoints"))
    with pytest.raises(TrackingError, match="is deleted"), tracked_run(store_uri, "gone", "a-run"):
        pass
    assert client.search_runs([client.get_experiment_by_name("gone").experiment_id], run_view_type=3) == []


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_new_store_cut_short_is_removed_not_left_broken(tmp_path):
    """A store whose schema creation a full disk cut short kept half a schema: once space was freed, every command
    failed with "table ... already exists", said as a store failure with a FAILED run to resume. Here the disk
    fills at 150 kB (a file size limit, as a tmpfs of that size does)."""
    db = tmp_path / "mlflow.db"
    limited = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))\n"
        "from cifar_exp.tracking.store_checks import prepare_store\n"
        f"prepare_store('sqlite:///{db}')\n"
    )
    cut = subprocess.run([sys.executable, "-c", limited], capture_output=True, text=True, timeout=120)
    assert cut.returncode != 0 and "the new store could not be created" in cut.stderr, cut.stderr[-2000:]
    assert not db.exists()
    prepare_store(f"sqlite:///{db}")  # space again: the store is created whole
    assert MlflowClient(f"sqlite:///{db}").search_experiments()


def test_sweep_parent_summary(store_uri):
    parent = open_sweep_parent(store_uri, "t", "/sweep/dir", "sweep-x", ["a=1,2"])
    for name, accuracy in (("one", 0.2), ("two", 0.4)):
        with tracked_run(store_uri, "t", name, parent_run_id=parent) as run:
            run.log_metrics({"test_accuracy": accuracy})
    with pytest.raises(RuntimeError), tracked_run(store_uri, "t", "three", parent_run_id=parent):
        raise RuntimeError("bad job")
    summary = close_sweep_parent(store_uri, parent)
    assert summary["jobs"] == 3 and summary["failed"] == 1 and summary["best_job"] == "two"
    stored = MlflowClient(store_uri).get_run(parent)
    assert stored.info.status == "FAILED" and stored.data.metrics["best_test_accuracy"] == 0.4
    assert close_sweep_parent(store_uri, parent) == {}


def test_a_sweep_that_stopped_on_an_error_outside_its_jobs_is_failed_not_finished(store_uri):
    """Hydra never reached the sweep's end (the sweeper or the launcher raised, e.g. a search's journal on a full
    disk) though no job failed: the parent is FAILED saying so, never FINISHED as if the sweep were whole."""
    from cifar_exp.tracking.sweep_parent import ABORTED

    parent = open_sweep_parent(store_uri, "t", "/sweep/dir", "sweep-x", ["a=1,2"])
    with tracked_run(store_uri, "t", "one", parent_run_id=parent) as run:
        run.log_metrics({"test_accuracy": 0.2})
    summary = close_sweep_parent(store_uri, parent, aborted=True)
    stored = MlflowClient(store_uri).get_run(parent)
    assert stored.info.status == "FAILED" and summary["ended"] == ABORTED == stored.data.tags["error"]
    assert stored.data.tags["mlflow.note.content"].startswith(f"FAILED: {ABORTED}. 1 jobs, 0 failed")
    failing = open_sweep_parent(store_uri, "t", "/sweep/dir2", "sweep-x", ["a=1,2"])
    with pytest.raises(RuntimeError), tracked_run(store_uri, "t", "bad", parent_run_id=failing):
        raise RuntimeError("bad job")
    summary = close_sweep_parent(store_uri, failing, aborted=True)  # Hydra raised the failed job's error: said as such
    assert "ended" not in summary and summary["failed_jobs"] == ["bad"]
    assert MlflowClient(store_uri).get_run(failing).info.status == "FAILED"


def test_a_job_that_failed_before_its_run_existed_fails_the_sweep_and_is_named(store_uri):
    """Job #1 failed before its run existed (only the parent's tag says so); job #2 failed with a run (counted
    once, though both record it); job #0 FINISHED."""
    parent = open_sweep_parent(store_uri, "t", "/sweep/dir", "sweep-x", ["data.path=a,b,c"])
    with tracked_run(store_uri, "t", "zero", parent_run_id=parent, tags={TAG_JOB_NUM: "0"}) as run:
        run.log_metrics({"test_accuracy": 0.3})
    note_failed_job(store_uri, parent, 1, ["data.path=b"], "b/train.npz is truncated or corrupt")
    with pytest.raises(RuntimeError), tracked_run(store_uri, "t", "two", parent_run_id=parent, tags={TAG_JOB_NUM: "2"}):
        raise RuntimeError("bad job")
    note_failed_job(store_uri, parent, 2, ["data.path=c"], "RuntimeError: bad job")
    summary = close_sweep_parent(store_uri, parent)
    assert summary["jobs"] == 3 and summary["failed"] == 2
    assert summary["failed_jobs"] == ["two", "#1 (data.path=b): b/train.npz is truncated or corrupt"]
    stored = MlflowClient(store_uri).get_run(parent)
    assert stored.info.status == "FAILED" and "#1 (data.path=b)" in stored.data.tags["mlflow.note.content"]


def test_a_rerun_sweep_picks_its_best_among_the_jobs_it_skipped_too(store_uri):
    """A sweep run again skips what FINISHED before: the best job (and the model registered as @best) is chosen
    among all of the sweep's jobs, not only among those it trained this time."""
    earlier = open_sweep_parent(store_uri, "t", "/sweep/1", "sweep-x", ["a=1,2"])
    with tracked_run(store_uri, "t", "good", parent_run_id=earlier) as good:
        good.log_metrics({"test_accuracy": 0.5})
    close_sweep_parent(store_uri, earlier)
    again = open_sweep_parent(store_uri, "t", "/sweep/2", "sweep-x", ["a=1,2"])
    note_skipped_job(store_uri, again, "good", good.run_id)
    with tracked_run(store_uri, "t", "poor", parent_run_id=again) as poor:
        poor.log_metrics({"test_accuracy": 0.02})
    summary = close_sweep_parent(store_uri, again)
    assert summary["best_job"] == "good" and summary["best_run_id"] == good.run_id
    assert summary["jobs"] == 1 and summary["skipped_jobs"] == {good.run_id: "good"}


def test_a_configuration_listed_twice_in_a_sweep_is_said_to_be_its_own_job(store_uri):
    parent = open_sweep_parent(store_uri, "t", "/sweep/1", "sweep-x", ["seed=0,0"])
    with tracked_run(store_uri, "t", "s0", parent_run_id=parent) as run:
        run.log_metrics({"test_accuracy": 0.3})
    note_skipped_job(store_uri, parent, "s0", run.run_id)
    summary = close_sweep_parent(store_uri, parent)
    assert summary["jobs"] == 1 and summary["skipped_jobs"] == {run.run_id: "s0"} and summary["best_job"] == "s0"
    note = MlflowClient(store_uri).get_run(parent).data.tags["mlflow.note.content"]
    assert f"1 skipped, the same configuration as its job: s0 ({run.run_id})" in note and "earlier" not in note


def test_skipped_jobs_of_one_name_are_each_counted(store_uri):
    """Run names leave settings out (batch size): two skipped jobs of one name are two jobs, and the better one is
    the sweep's best. A parent recorded before (tag keyed by the job's name) still reads."""
    earlier = open_sweep_parent(store_uri, "t", "/sweep/1", "sweep-x", ["b=32,64"])
    accuracies = {}
    for accuracy in (0.015, 0.005):
        with tracked_run(store_uri, "t", "same-name", parent_run_id=earlier) as run:
            run.log_metrics({"test_accuracy": accuracy})
        accuracies[run.run_id] = accuracy
    close_sweep_parent(store_uri, earlier)
    again = open_sweep_parent(store_uri, "t", "/sweep/2", "sweep-x", ["b=32,64"])
    for run_id in accuracies:
        note_skipped_job(store_uri, again, "same-name", run_id)
    summary = close_sweep_parent(store_uri, again)
    assert summary["skipped_jobs"] == {run_id: "same-name" for run_id in accuracies}
    assert accuracies[summary["best_run_id"]] == 0.015

    legacy = open_sweep_parent(store_uri, "t", "/sweep/3", "sweep-x", ["b=32"])
    best = max(accuracies, key=accuracies.__getitem__)
    MlflowClient(store_uri).set_tag(legacy, "cifar_exp.skipped.same-name", best)
    assert close_sweep_parent(store_uri, legacy)["skipped_jobs"] == {best: "same-name"}


def test_a_stopped_search_names_no_best_by_test_and_says_its_trials_are_not_continued(store_uri):
    parent = open_sweep_parent(store_uri, "t", "/search/1", "search-x", ["lr=interval(0.1,1)"])
    with tracked_run(store_uri, "t", "trial0", parent_run_id=parent) as trial:
        trial.log_metrics({"test_accuracy": 0.5})
    summary = close_sweep_parent(store_uri, parent, "m", ended="KILLED", reason="the sweep was stopped", search=True)
    stored = MlflowClient(store_uri).get_run(parent)
    assert "best_job" not in summary and "best_job" not in stored.data.tags
    assert "best_test_accuracy" not in stored.data.metrics
    assert "goes on with new trials" in stored.data.tags["mlflow.note.content"]
    assert "resume=auto" not in stored.data.tags["mlflow.note.content"]


def test_a_job_the_sweeps_stop_ended_is_stopped_not_failed(store_uri):
    from cifar_exp.tracking import mark_killed

    parent = open_sweep_parent(store_uri, "t", "/sweep/s", "sweep-x", ["a=1,2"])
    with tracked_run(store_uri, "t", "done", parent_run_id=parent) as done:
        done.log_metrics({"test_accuracy": 0.5})
    with tracked_run(store_uri, "t", "cut", parent_run_id=parent) as cut:
        pass
    mark_killed(MlflowClient(store_uri), cut.run_id, "stopped by SIGTERM")
    summary = close_sweep_parent(store_uri, parent, ended="KILLED", reason="the sweep was stopped by SIGTERM")
    assert summary["failed"] == 0 and summary["stopped_jobs"] == ["cut"]
    assert MlflowClient(store_uri).get_run(parent).info.status == "KILLED"


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def test_mlflows_logged_traceback_of_a_database_error_becomes_one_line(caplog):
    """MLflow logs the traceback of a database error before raising it; the raised error is what we report."""
    import logging

    import sqlalchemy

    import cifar_exp.tracking.store  # noqa: F401  (installs the filter)

    error = sqlalchemy.exc.OperationalError("INSERT INTO metrics ...", {}, Exception("database or disk is full"))
    try:
        raise error
    except sqlalchemy.exc.OperationalError as caught:
        logging.getLogger("mlflow.store.db.utils").exception("SQLAlchemy database error. Caught:\n%s", caught)
    (record,) = caplog.records
    assert record.exc_info is None and record.getMessage() == "(builtins.Exception) database or disk is full"


def test_a_database_store_that_does_not_answer_is_said_at_once_without_its_password():
    import time

    started = time.perf_counter()
    with pytest.raises(TrackingError, match="the database does not answer") as raised:
        prepare_store("postgresql://user:secret@127.0.0.1:9/mlflow")
    assert "secret" not in str(raised.value) and "user:***@" in str(raised.value)
    assert time.perf_counter() - started < 30  # MLflow alone retries for about two minutes


def test_a_relative_sqlite_store_keeps_its_artifacts_beside_it(tmp_path, monkeypatch):
    from cifar_exp.tracking import client_for, experiment_id

    monkeypatch.chdir(tmp_path)
    prepare_store("sqlite:///relative.db")
    client = client_for("sqlite:///relative.db")
    found = client.get_experiment(experiment_id(client, "e"))
    assert found.artifact_location == (tmp_path / "artifacts").as_uri()


def test_two_jobs_logging_the_same_new_dataset_at_once_both_record_it(store_uri, tiny_splits):
    """MLflow looks a dataset up, then inserts it; the job that loses the race finds it on its second try."""
    from mlflow.exceptions import MlflowException

    from cifar_exp.tracking import client_for, experiment_id, prepare_store
    from cifar_exp.tracking.datasets import dataset_inputs, log_dataset_inputs
    from cifar_exp.tracking.run import Run

    prepare_store(store_uri)
    client = client_for(store_uri)
    run = Run(client, client.create_run(experiment_id(client, "e")).info.run_id)
    calls = []
    original = client.log_inputs

    def lost_the_race(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id")
        return original(*args, **kwargs)

    client.log_inputs = lost_the_race  # type: ignore[method-assign]
    train, test = tiny_splits
    log_dataset_inputs(
        run, dataset_inputs({"train": (train["x"], train["y_fine"]), "test": (test["x"], test["y_fine"])}, "/x", "fine")
    )
    assert len(calls) == 2 and len(client.get_run(run.run_id).inputs.dataset_inputs) == 2


def test_an_installed_package_run_inside_another_repository_records_no_commit(tmp_path, monkeypatch):
    """Installed as a wheel, the package has no checkout of its own: the git repository around the working
    directory is someone else's code, and its commit must not pass for this code's version."""
    import subprocess

    from cifar_exp.tracking import environment

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(tmp_path),
            "-c",
            "user.name=x",
            "-c",
            "user.email=x@y",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "other",
        ],
        check=True,
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(environment, "CHECKOUT", None)
    environment.code_version.cache_clear()
    try:
        assert environment.code_version() == ("", "unknown")
    finally:
        environment.code_version.cache_clear()
    monkeypatch.undo()
    assert len(environment.code_version()[0]) == 40  # from its own checkout, this one
    environment.code_version.cache_clear()


def test_the_code_version_is_read_once_per_process(monkeypatch):
    """A commit made while a sweep trains must not be recorded on its later jobs: they run the code imported."""
    from cifar_exp.tracking import environment

    environment.code_version.cache_clear()
    heads = iter(["a" * 40, "", "b" * 40, ""])
    monkeypatch.setattr(environment, "_git", lambda *args: next(heads))
    assert environment.code_version() == ("a" * 40, "false")
    assert environment.code_version() == ("a" * 40, "false")  # the checkout moved on; the process did not
    environment.code_version.cache_clear()


def test_server_retries_are_bounded_unless_the_user_set_them(monkeypatch):
    """MLflow's own 7 retries with 120 s waits froze a run minutes per call on a dead server."""
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT

    from cifar_exp.tracking.store_checks import bound_server_retries

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    bound_server_retries()
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 4 and MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 60


@pytest.mark.parametrize(
    "uri,shown",
    [
        ("http://user:secret@127.0.0.1:5000", "http://user:***@127.0.0.1:5000"),
        ("http://user:p@ss@127.0.0.1:5000/x", "http://user:***@127.0.0.1:5000/x"),  # an @ in the password
        ("http://:tok3n@127.0.0.1:5000", "http://:***@127.0.0.1:5000"),  # a token without a user name
        ("postgresql://u:pw@h:5432/db?sslmode=require", "postgresql://u:***@h:5432/db?sslmode=require"),
        ("sqlite:////tmp/mlruns/mlflow.db", "sqlite:////tmp/mlruns/mlflow.db"),
    ],
)
def test_passwords_in_a_uri_are_masked_whole(uri, shown):
    from cifar_exp.tracking import masked

    assert masked(uri) == shown


def test_a_refused_request_is_said_by_its_reason_not_urllib3s_wrapping():
    from cifar_exp.tracking.store_checks import _reason

    ssl = (
        "HTTPSConnectionPool(host='127.0.0.1', port=5099): Max retries exceeded with url: / (Caused by "
        "SSLError(SSLError(1, '[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)')))"
    )
    assert _reason(Exception(ssl)) == "[SSL: WRONG_VERSION_NUMBER] wrong version number"
    assert _reason(Exception("404 Client Error: Not Found for url: http://h/api")).startswith("404 Client Error")


def test_a_password_in_a_uri_never_reaches_the_store(store_uri):
    """Params, tags and text artifacts: whoever reads the store must not read the credentials of a server."""
    secret = "postgresql://team:s3cret@db.example:5432/mlflow"
    with tracked_run(store_uri, "t", "masked", tags={"command": f"python -m cifar_exp tracking.uri={secret}"}) as run:
        run.log_params({"tracking.uri": secret})
        run.set_tags({"best_command": f"tracking.uri={secret} seed=1"})
        run.log_text(f"tracking:\n  uri: {secret}\n", "config/config.yaml")
        run_id = run.run_id
    client = MlflowClient(store_uri)
    stored = client.get_run(run_id).data
    text = (Path(client.download_artifacts(run_id, "config/config.yaml"))).read_text()
    everything = " ".join([*stored.params.values(), *stored.tags.values(), text])
    assert "s3cret" not in everything
    assert stored.params["tracking.uri"] == "postgresql://team:***@db.example:5432/mlflow"
