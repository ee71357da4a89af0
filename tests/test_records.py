"""Run records: a store's runs written as files and recreated in other stores, where the report and
``resume=auto`` treat them as that store's own; imports that are cut short, repeated, or fed bad records."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from conftest import cli, small_disk, tiny
from mlflow.tracking import MlflowClient

from cifar_exp.errors import ModelError, TrackingError
from cifar_exp.records import main
from cifar_exp.report import report
from cifar_exp.tracking import record_export, record_import, records, store
from cifar_exp.tracking.registry import logged_model_id


@pytest.fixture(scope="module")
def trained(tmp_path_factory, npz_dir) -> tuple[str, list[str], Path]:
    """A finished tiny decay sweep (2 arms x 2 seeds) in a store of its own, the overrides that ran it, and the
    folder where each run wrote its record as it finished (``tracking.records``)."""
    tmp_path = tmp_path_factory.mktemp("trained")
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    overrides = ["--multirun", "+experiment=decay", *tiny(npz_dir, uri), "seed=0,1", "data.train_size=200"]
    overrides.append("optimizer.lr=1e-4")
    done = cli(tmp_path, *overrides, f"tracking.records={tmp_path / 'kept'}")
    assert done.returncode == 0, done.stderr[-3000:]
    return uri, overrides, tmp_path / "kept"


def _store(tmp_path: Path, name: str) -> str:
    uri = f"sqlite:///{tmp_path / name / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("cifar_exp")
    return uri


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("cifar_exp")
    return [] if experiment is None else client.search_runs([experiment.experiment_id], max_results=1000)


def _import(folder: Path, uri: str) -> record_import.Imported:
    return record_import.import_records(MlflowClient(uri), "cifar_exp", folder)


def _links_resolve(uri: str) -> None:
    """Every run a tag links to (a child's parent, a sweep's best job, its skipped jobs' runs) is in this store."""
    runs = _runs(uri)
    ids = {r.info.run_id for r in runs}
    for run in runs:
        for key, value in run.data.tags.items():
            if key not in ("mlflow.parentRunId", "best_run_id") and not key.startswith("cifar_exp.skipped."):
                continue
            for found in records.RUN_ID_IN_TEXT.findall(f"{key} {value}"):
                assert found in ids, f"{run.info.run_name}: tag {key}={value} names no run of {uri}"


def _copy(uri: str, folder: Path) -> str:
    """A copy of a SQLite store, for a test that changes its runs."""
    folder.mkdir()
    shutil.copy(uri.removeprefix("sqlite:///"), folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def _is_own(run) -> bool:
    return records.TAG_RECORD_OF not in run.data.tags


def _texts(folder: Path) -> dict[Path, str]:
    return {p.relative_to(folder): p.read_text() for p in folder.rglob("*.json")}


def test_imported_runs_give_the_same_report_with_their_links_rewritten(trained, tmp_path):
    uri, _, _ = trained
    target = _store(tmp_path, "other")
    main(["export", str(tmp_path / "records"), "--uri", uri])
    done = _import(tmp_path / "records", target)
    originals, copies = _runs(uri), _runs(target)
    assert len(done.imported) == len(originals) == len(copies) == 5  # 4 trainings and their sweep's parent
    assert {p.parent.name for p in (tmp_path / "records").rglob("*.json")} == {"decay"}

    new_id = {c.data.tags[records.TAG_RECORD_OF]: c.info.run_id for c in copies}
    client, target_client = MlflowClient(uri), MlflowClient(target)
    for run in originals:
        copy = target_client.get_run(new_id[run.info.run_id])
        assert (copy.info.status, copy.info.start_time, copy.info.end_time, copy.info.run_name) == (
            run.info.status,
            run.info.start_time,
            run.info.end_time,
            run.info.run_name,
        )
        assert copy.data.params == run.data.params
        assert copy.data.metrics == {k: v for k, v in run.data.metrics.items() if not k.startswith("system/")}
        history = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_loss")]
        assert [(m.step, m.value) for m in target_client.get_metric_history(copy.info.run_id, "val_loss")] == history
        parent = run.data.tags.get("mlflow.parentRunId")
        assert copy.data.tags.get("mlflow.parentRunId") == (parent and new_id[parent])
        assert "cifar_exp.importing" not in copy.data.tags
        assert not target_client.list_artifacts(copy.info.run_id)  # evidence, not models
    _links_resolve(target)

    columns = ["configuration", "runs", "test_accuracy_mean", "ci_low", "ci_high", "verdict", "test_loss_mean"]
    source = _copy(
        uri, tmp_path / "source"
    )  # the report logs its verdict to the sweep: the module's store stays as trained
    assert report("decay", uri=target)[0][columns].equals(report("decay", uri=source)[0][columns])

    again = _import(tmp_path / "records", target)
    assert not again.imported and len(again.already) == 5 and len(_runs(target)) == 5
    mine = _import(tmp_path / "records", uri)  # into the store they came from: its own runs, untouched
    assert not mine.imported and not mine.updated and len(_runs(uri)) == 5


def test_records_exported_from_an_imported_store_are_the_same_records(trained, tmp_path):
    """A record speaks in original ids, so a chain of stores (a GPU box, this machine, a laptop) keeps its links."""
    uri, _, _ = trained
    main(["export", str(tmp_path / "a"), "--uri", uri])
    second = _store(tmp_path, "b")
    _import(tmp_path / "a", second)
    main(["export", str(tmp_path / "b_records"), "--uri", second])
    assert _texts(tmp_path / "b_records") == _texts(tmp_path / "a")
    third = _store(tmp_path, "c")
    _import(tmp_path / "b_records", third)
    _links_resolve(third)
    assert _import(tmp_path / "a", third).already and not _import(tmp_path / "a", third).imported


def test_a_sweep_on_the_imported_store_skips_what_its_records_finished(trained, tmp_path, monkeypatch):
    uri, overrides, _ = trained
    target = _store(tmp_path, "mlruns")
    main(["export", str(tmp_path / "records"), "--uri", uri])
    _import(tmp_path / "records", target)
    done = cli(tmp_path, *[o.replace(uri, target) for o in overrides], "resume=auto")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (done.stdout + done.stderr).count("already FINISHED as run") == 4
    trainings = [r for r in _runs(target) if "test_accuracy" in r.data.metrics]
    assert len(trainings) == 4 and all(records.TAG_RECORD_OF in r.data.tags for r in trainings)
    _links_resolve(target)  # the new sweep parent's skipped-job tags name the imported runs
    with pytest.raises(ModelError, match="imported from a record of run"):
        logged_model_id(MlflowClient(target), trainings[0].info.run_id)

    victim = next(p for p in (tmp_path / "records").rglob("*.json") if '"sweep-decay"' not in p.read_text())
    record = json.loads(victim.read_text())
    record["metrics"]["test_accuracy"][0][1] = 0.5
    victim.write_text(records.dumps(record))
    assert _import(tmp_path / "records", target).updated == [record["run_id"]]
    _own_sweep_follows(target, record["run_id"])

    record["tags"]["note"] = "changed again"  # and its rewrite killed right after the old copy was deleted
    victim.write_text(records.dumps(record))
    create_run = MlflowClient.create_run

    def dies(self, *args, **kwargs):
        raise _Cut

    monkeypatch.setattr(MlflowClient, "create_run", dies)
    with pytest.raises(_Cut):
        _import(tmp_path / "records", target)
    monkeypatch.setattr(MlflowClient, "create_run", create_run)
    assert record["run_id"] in _import(tmp_path / "records", target).imported
    _own_sweep_follows(target, record["run_id"])
    main(["export", str(tmp_path / "again"), "--uri", target])  # in original ids only
    again, before = _texts(tmp_path / "again"), _texts(tmp_path / "records")
    assert {k: json.loads(v) for k, v in again.items() if k in before} == {k: json.loads(v) for k, v in before.items()}
    (own,) = [v for k, v in again.items() if k not in before]
    assert f"cifar_exp.skipped.{record['run_id']}" in own


def _own_sweep_follows(uri: str, original: str) -> None:
    """The store's own sweep links to the run that holds record ``original`` now, and every link resolves."""
    (own,) = [r for r in _runs(uri) if r.data.tags.get("cifar_exp.role") == "sweep" and _is_own(r)]
    held = next(r.info.run_id for r in _runs(uri) if r.data.tags.get(records.TAG_RECORD_OF) == original)
    assert f"cifar_exp.skipped.{held}" in own.data.tags
    _links_resolve(uri)


class _Cut(Exception):
    """Stands for the import's process dying at that call."""


@pytest.mark.parametrize(
    "method, call",
    [
        ("log_batch", 3),  # while writing the first runs' params and metrics
        ("set_terminated", 1),  # after the parent's tags, before its status
        ("delete_tag", 1),  # the parent ended, not yet marked whole
        ("delete_tag", 3),  # the parent and a child whole, the rest not
    ],
)
def test_an_import_cut_short_anywhere_is_finished_by_the_next(trained, tmp_path, monkeypatch, method, call):
    uri, _, _ = trained
    target = _store(tmp_path, "other")
    main(["export", str(tmp_path / "records"), "--uri", uri])
    calls = []
    real = getattr(MlflowClient, method)

    def dies(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise _Cut
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, method, dies)
    with pytest.raises(_Cut):
        _import(tmp_path / "records", target)
    monkeypatch.setattr(MlflowClient, method, real)

    _import(tmp_path / "records", target)
    runs = _runs(target)
    assert len(runs) == 5 and {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.tags[records.TAG_RECORD_OF] for r in runs) == sorted(r.info.run_id for r in _runs(uri))
    assert not [r for r in runs if "cifar_exp.importing" in r.data.tags]
    _links_resolve(target)
    parent = next(r for r in runs if r.info.run_name == "sweep-decay")
    assert parent.data.tags["cifar_exp.role"] == "sweep" and parent.data.tags["best_run_id"]


def test_one_import_per_store_at_a_time(trained, tmp_path):
    uri, _, _ = trained
    target = _store(tmp_path, "other")
    main(["export", str(tmp_path / "records"), "--uri", uri])
    with store.import_lock(target):
        with pytest.raises(TrackingError, match="another import into .* is running now"):
            _import(tmp_path / "records", target)
    assert _runs(target) == []
    with store.import_lock(uri):  # nor an export of a store being imported into: it would see runs half-linked
        with pytest.raises(TrackingError, match="an import into .* is running now"):
            record_export.export_records(MlflowClient(uri), "cifar_exp", tmp_path / "during")
    assert not (tmp_path / "during").exists()


def _edited(record: dict, change: str) -> object:
    edits = {
        "no run_name": lambda r: r.pop("run_name"),
        "no end_time": lambda r: r.pop("end_time"),
        "status DONE": lambda r: r.update(status="DONE"),
        "status RUNNING": lambda r: r.update(status="RUNNING"),
        "params a list": lambda r: r.update(params=[]),
        "a step of letters": lambda r: r["metrics"]["val_loss"].append(["a", 1]),
        "a tag that is a number": lambda r: r["tags"].update(pid=7),
        "start_time in words": lambda r: r.update(start_time="yesterday"),
        "not a run id": lambda r: r.update(run_id="not an id"),
        "a value no float holds": lambda r: r["metrics"]["val_loss"].append([9, 10**400, 1]),
        "a param name too long": lambda r: r["params"].update({"x" * 300: "1"}),
        "start_time true": lambda r: r.update(start_time=True),
        "a tag name MLflow refuses": lambda r: r["tags"].update({"bad*key": "1"}),
        "a metric named as a path": lambda r: r["metrics"].update({"../evil": [[0, 1.0, 1]]}),
        "an empty param name": lambda r: r["params"].update({"": "1"}),
        "a newer format": lambda r: r.update(format=2),
    }
    edits[change](record)
    return record


@pytest.mark.parametrize(
    "change",
    [
        "no run_name",
        "no end_time",
        "status DONE",
        "status RUNNING",
        "params a list",
        "a step of letters",
        "a tag that is a number",
        "start_time in words",
        "not a run id",
        "a value no float holds",
        "a param name too long",
        "a tag name MLflow refuses",
        "a metric named as a path",
        "an empty param name",
        "start_time true",
        "a newer format",
        "cut short",
        "recorded twice",
        "a folder named .json",
    ],
)
def test_a_bad_record_stops_the_import_before_the_store_is_touched(trained, tmp_path, capsys, change):
    uri, _, _ = trained
    folder = tmp_path / "records"
    main(["export", str(folder), "--uri", uri])
    victim = next(p for p in sorted(folder.rglob("*.json")) if "sweep" not in p.read_text()[:400])
    if change == "cut short":
        victim.write_text(victim.read_text()[:200])
    elif change == "recorded twice":
        (folder / "decay-old").mkdir()
        (folder / "decay-old" / victim.name).write_text(victim.read_text())
    elif change == "a folder named .json":
        (folder / "notes.json").mkdir()
    else:
        victim.write_text(json.dumps(_edited(json.loads(victim.read_text()), change)))
    target = tmp_path / "other" / "mlflow.db"
    with pytest.raises(SystemExit) as stop:
        main(["import", str(folder), "--uri", f"sqlite:///{target}"])
    assert stop.value.code == 2
    said = capsys.readouterr().err
    assert said.startswith("error: ") and "nothing was imported" in said and "Traceback" not in said
    assert not target.exists()


def test_a_changed_record_is_written_again_and_the_stores_own_runs_are_never_changed(trained, tmp_path, capsys):
    uri, _, _ = trained
    folder = tmp_path / "records"
    main(["export", str(folder), "--uri", uri])
    target = _store(tmp_path, "other")
    _import(folder, target)
    victim = next(p for p in folder.rglob("*.json") if '"sweep-decay"' not in p.read_text())
    record = json.loads(victim.read_text())
    imported = next(r for r in _runs(target) if r.data.tags[records.TAG_RECORD_OF] == record["run_id"])
    MlflowClient(target).set_tag(imported.info.run_id, "mine", "a tag given in this store")
    record.update(status="FAILED")
    record["tags"]["note"] = "re-exported after a change"
    record["params"]["seed"] = "7"
    record["metrics"]["test_accuracy"][0][1] = 0.99
    victim.write_text(records.dumps(record))

    done = _import(folder, target)
    assert done.updated == [record["run_id"]] and not done.imported and len(done.already) == 4
    assert done.edited == [record["run_id"]]  # said by the command: the tag given here went with the replaced copy
    copy = next(r for r in _runs(target) if r.data.tags[records.TAG_RECORD_OF] == record["run_id"])
    assert copy.info.status == "FAILED" and copy.data.tags["note"] == "re-exported after a change"
    assert copy.data.params["seed"] == "7" and copy.data.metrics["test_accuracy"] == 0.99
    assert len(_runs(target)) == 5
    _links_resolve(target)
    assert not _import(folder, target).updated
    MlflowClient(target).set_tag(copy.info.run_id, "mine", "given here again")
    record["tags"]["note"] = "changed once more"
    victim.write_text(records.dumps(record))
    capsys.readouterr()
    main(["import", str(folder), "--uri", target])
    said = capsys.readouterr().out
    assert "1 of the runs written again had been changed in this store" in said and record["run_id"] in said

    main(["import", str(folder), "--uri", uri])
    said = capsys.readouterr().out
    assert f"1 of this store's own runs differ from their records in {folder}" in said and record["run_id"] in said
    own = MlflowClient(uri).get_run(record["run_id"])
    assert own.info.status == "FINISHED" and "note" not in own.data.tags and own.data.params["seed"] != "7"


def test_an_older_copy_of_the_records_imported_after_a_newer_one_takes_nothing_back(trained, tmp_path, capsys):
    uri, _, _ = trained
    source = _copy(uri, tmp_path / "source")
    main(["export", str(tmp_path / "older"), "--uri", source])
    (parent,) = [r for r in _runs(source) if r.data.tags.get("cifar_exp.role") == "sweep"]
    report("decay", uri=source)  # gives the ended sweep its verdict and rewrites its note
    verdict = MlflowClient(source).get_run(parent.info.run_id).data.tags["verdict"]
    main(["export", str(tmp_path / "newer"), "--uri", source])
    target = _store(tmp_path, "target")
    assert len(_import(tmp_path / "newer", target).imported) == 5
    capsys.readouterr()

    main(["import", str(tmp_path / "older"), "--uri", target])
    said = capsys.readouterr().out
    assert "0 imported earlier written again" in said and "earlier copies of those" in said
    assert parent.info.run_id in said
    copy = next(r for r in _runs(target) if r.data.tags[records.TAG_RECORD_OF] == parent.info.run_id)
    assert copy.data.tags["verdict"] == verdict and len(_runs(target)) == 5

    other = _store(tmp_path, "other")  # the other way round, the newer copy replaces the older
    _import(tmp_path / "older", other)
    assert _import(tmp_path / "newer", other).updated == [parent.info.run_id]
    copy = next(r for r in _runs(other) if r.data.tags[records.TAG_RECORD_OF] == parent.info.run_id)
    assert copy.data.tags["verdict"] == verdict
    _links_resolve(other)


def test_a_run_filed_elsewhere_since_its_last_export_leaves_one_record(trained, tmp_path):
    uri, _, _ = trained
    source, folder = _copy(uri, tmp_path / "source"), tmp_path / "records"
    main(["export", str(folder), "--uri", source])
    (parent,) = [r for r in _runs(source) if r.data.tags.get("cifar_exp.role") == "sweep"]
    MlflowClient(source).update_run(parent.info.run_id, name="sweep-decay (final, 3 seeds)")  # renamed in the UI
    main(["export", str(folder), "--uri", source])
    assert [p.parent.name for p in folder.rglob(f"{parent.info.run_id}.json")] == ["other"]
    assert len(_import(folder, _store(tmp_path, "target")).imported) == 5


def test_a_half_imported_run_is_not_exported(trained, tmp_path, monkeypatch):
    uri, _, _ = trained
    main(["export", str(tmp_path / "records"), "--uri", uri])
    target = _store(tmp_path, "other")
    real = MlflowClient.delete_tag
    monkeypatch.setattr(MlflowClient, "delete_tag", lambda *args, **kwargs: (_ for _ in ()).throw(_Cut()))
    with pytest.raises(_Cut):
        _import(tmp_path / "records", target)
    monkeypatch.setattr(MlflowClient, "delete_tag", real)
    ended = [r for r in _runs(target) if r.info.status == "FINISHED"]
    assert ended and all("cifar_exp.importing" in r.data.tags for r in ended)
    main(["export", str(tmp_path / "again"), "--uri", target])
    assert not list((tmp_path / "again").rglob("*.json"))


def test_one_lock_for_one_store_under_any_name(tmp_path):
    (tmp_path / "real.db").write_bytes(b"")
    (tmp_path / "alias.db").symlink_to(tmp_path / "real.db")
    with store.import_lock(f"sqlite:///{tmp_path / 'real.db'}"):
        with pytest.raises(record_import.Timeout):
            store.import_lock(f"sqlite:///{tmp_path / 'alias.db'}").acquire()


def test_export_writes_whole_strict_json_files_under_plain_folder_names(trained, tmp_path, capsys):
    source, _, _ = trained
    uri = _copy(source, tmp_path / "copy")  # this test changes its runs
    folder = tmp_path / "records"
    client = MlflowClient(uri)
    run = next(r for r in _runs(uri) if "test_accuracy" in r.data.metrics)
    client.log_metric(run.info.run_id, "odd", math.nan, step=0)
    client.set_tag(run.info.run_id, "experiment", "../../escaped")
    main(["export", str(folder), "--uri", uri])
    escaped = folder / "other" / f"{run.info.run_id}.json"
    assert escaped.exists() and not (tmp_path / "escaped").exists()

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    for path in folder.rglob("*.json"):
        json.loads(path.read_text(), parse_constant=refuse)  # no bare NaN: any JSON reader takes it
    assert '"odd": [[0,"NaN",' in escaped.read_text()
    target = _store(tmp_path, "other")
    _import(folder, target)
    assert not _import(folder, uri).differ  # a NaN reads back as the same record
    copy = next(r for r in _runs(target) if r.data.tags[records.TAG_RECORD_OF] == run.info.run_id)
    assert math.isnan(copy.data.metrics["odd"])

    written = [p for p in folder.rglob("*") if p.is_file()]
    assert written and not [p for p in written if p.suffix == ".part"]
    stamp = {p: p.stat().st_mtime_ns for p in written}
    main(["export", str(folder), "--uri", uri])
    assert {p: p.stat().st_mtime_ns for p in written} == stamp  # unchanged records are not rewritten
    main(["export", str(tmp_path / "none"), "--uri", uri, "--experiment", "sgd"])
    assert not (tmp_path / "none").exists()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["export", str(folder), "--uri", uri, "--experiment", "bogus"])
    assert "unknown experiment bogus" in capsys.readouterr().err


def test_a_full_disk_leaves_the_records_written_whole_and_no_partial_file(trained, tmp_path, monkeypatch, capsys):
    uri, _, _ = trained
    folder = tmp_path / "records"
    write_text = Path.write_text
    written = []

    def fills_on_the_third(self, text, *args, **kwargs):
        if self.suffix == ".part":
            written.append(self)
            if len(written) == 3:
                write_text(self, text[:100])
                raise OSError(28, "No space left on device")
        return write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", fills_on_the_third)
    with pytest.raises(SystemExit) as stop:
        main(["export", str(folder), "--uri", uri])
    assert stop.value.code == 2
    said = capsys.readouterr().err
    assert "no space left on the device" in said and "export again" in said
    assert sorted(p.suffix for p in folder.rglob("*.*")) == [".json", ".json"]
    assert len(records.read_records(folder)) == 2


def test_a_real_full_disk_is_said_and_leaves_nothing_half_written(trained, tmp_path, capsys, caplog):
    """On a real filesystem that is full: export is one paragraph and exit 2, a run's own record is a warning, no
    ``.part`` file is left taking the room; once there is room again the same export writes them all."""
    uri, _, kept = trained
    with small_disk(tmp_path / "small", "64k") as small:
        filler = small / "filler"
        with open(filler, "wb", buffering=0) as out, pytest.raises(OSError):
            while True:
                out.write(b"\0" * 4096)
        with pytest.raises(SystemExit) as stop:
            main(["export", str(small / "records"), "--uri", uri])
        said = capsys.readouterr().err
        assert stop.value.code == 2 and "no space left on the device" in said and "export again" in said, said
        assert len(said.strip().splitlines()) == 1 and "Traceback" not in said
        assert ".json" in said and ".part" not in said  # the record it was writing, not its hidden part file
        run_id = next(r.info.run_id for r in _runs(uri) if "test_accuracy" in r.data.metrics)
        assert record_export.keep_record(uri, run_id, str(small / "records")) is None
        assert "is whole in the store, but its record could not be written" in caplog.text
        assert not [p for p in small.rglob("*") if p.suffix in (".part", ".json")]
        filler.unlink()
        main(["export", str(small / "records"), "--uri", uri])
        assert _texts(small / "records") == _texts(kept)


def _write_often(folder: Path, writer: int) -> None:
    """One of two processes writing the same run's record over and over (a run's tracking.records and an export)."""
    info = SimpleNamespace(status="FINISHED", run_name="x")
    run = SimpleNamespace(info=info, data=SimpleNamespace(tags={}, params={}, metrics={"test_accuracy": 0.5}))
    for i in range(150):
        steps = [[step, step / 7, 1] for step in range(5000)]  # a long history: a write takes a while
        record = {"format": records.FORMAT, "run_id": "a" * 32, "run_name": "x", "status": "FINISHED"}
        record.update(start_time=0, end_time=1, params={}, tags={"writer": str(writer), "i": str(i)})
        record.update(metrics={"loss": steps})
        record_export.write_record(folder, cast(Any, run), record)


def test_two_writers_of_one_record_at_once_each_write_it_whole(tmp_path):
    writers = [multiprocessing.get_context("spawn").Process(target=_write_often, args=(tmp_path, k)) for k in (0, 1)]
    for writer in writers:
        writer.start()
    path = tmp_path / "other" / f"{'a' * 32}.json"
    while any(writer.is_alive() for writer in writers):
        if path.exists():
            json.loads(path.read_text())  # never half of one
    for writer in writers:
        writer.join()
    assert [writer.exitcode for writer in writers] == [0, 0]
    assert [p.name for p in (tmp_path / "other").iterdir()] == [path.name]  # no writer's part left behind
    assert len(records.read_records(tmp_path)) == 1


def test_export_removes_the_part_files_of_writers_that_died(trained, tmp_path):
    """A writer killed between writing its part file and renaming it leaves the part; the next export removes it,
    and leaves a live writer's."""
    uri, _, _ = trained
    folder = tmp_path / "records" / "decay"
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    parts = {pid: folder / f".{'b' * 32}.{pid}.1.part" for pid in (int(dead.stdout), os.getpid())}
    for part in parts.values():
        part.write_text("{}")
    main(["export", str(tmp_path / "records"), "--uri", uri])
    assert not parts[int(dead.stdout)].exists() and parts[os.getpid()].exists()
    assert len(records.read_records(tmp_path / "records")) == 5


def test_each_run_writes_its_record_as_it_finishes_the_same_as_export(trained, tmp_path):
    uri, _, kept = trained
    main(["export", str(tmp_path / "records"), "--uri", uri])
    exported = _texts(tmp_path / "records")
    assert len(exported) == 5 and {p.parent.name for p in exported} == {"decay"}
    assert _texts(kept) == exported


def test_a_record_that_cannot_be_written_is_a_warning_not_a_failure(trained, tmp_path, caplog):
    uri, _, _ = trained
    (tmp_path / "a_file").write_text("")
    run_id = next(r.info.run_id for r in _runs(uri) if "test_accuracy" in r.data.metrics)
    assert record_export.keep_record(uri, run_id, str(tmp_path / "a_file" / "records")) is None
    assert f"run {run_id} is whole in the store, but its record could not be written" in caplog.text
    assert "python -m cifar_exp.records export" in caplog.text


def test_the_console_script_hands_records_on(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "cifar_exp.cli", "records", "import", "/nonexistent/records", "--tracking-uri", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "no records folder /nonexistent/records" in done.stderr


def test_help_says_the_whole_first_paragraph(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "recreates them in a store (see :mod:`cifar_exp.tracking.records`)." in said


def test_a_stop_signal_during_an_import_is_said_and_the_next_import_finishes_it(trained, tmp_path, monkeypatch, capsys):
    uri, _, _ = trained
    folder, target = tmp_path / "records", _store(tmp_path, "target")
    main(["export", str(folder), "--uri", uri])
    finish = record_import._finish

    def signalled(*args, **kwargs):  # SIGTERM to this process, as the first run is being finished
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return finish(*args, **kwargs)

    monkeypatch.setattr(record_import, "_finish", signalled)
    handlers = {each: signal.getsignal(each) for each in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        with pytest.raises(SystemExit) as stop:
            main(["import", str(folder), "--uri", target])
    finally:
        for each, handler in handlers.items():
            signal.signal(each, handler)
    said = capsys.readouterr().err
    assert stop.value.code == 143 and "\nerror: stopped by SIGTERM; what this import had written" in said, said
    monkeypatch.setattr(record_import, "_finish", finish)
    _import(folder, target)
    assert len([r for r in _runs(target) if records.TAG_RECORD_OF in r.data.tags]) == 5
    _links_resolve(target)
