"""Run records: a store's runs written as files and recreated in another store, where the report and
``resume=auto`` treat them as that store's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli, tiny
from mlflow.tracking import MlflowClient

from cifar_exp.errors import ModelError, TrackingError
from cifar_exp.records import main
from cifar_exp.report import report
from cifar_exp.tracking import records
from cifar_exp.tracking.registry import logged_model_id


@pytest.fixture(scope="module")
def trained(tmp_path_factory, npz_dir) -> tuple[str, list[str]]:
    """A finished tiny decay sweep (2 arms x 2 seeds) in a store of its own, and the overrides that ran it."""
    tmp_path = tmp_path_factory.mktemp("trained")
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    overrides = [
        "--multirun",
        "+experiment=decay",
        *tiny(npz_dir, uri),
        "seed=0,1",
        "data.train_size=200",
        "optimizer.lr=1e-4",
    ]
    done = cli(tmp_path, *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    return uri, overrides


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("cifar_exp")
    return [] if experiment is None else client.search_runs([experiment.experiment_id], max_results=1000)


def _round_trip(source: str, folder: Path, target: str) -> records.Imported:
    main(["export", str(folder), "--uri", source])
    return records.import_records(MlflowClient(target), "cifar_exp", folder)


def test_imported_runs_give_the_same_report_with_their_links_rewritten(trained, tmp_path):
    uri, _ = trained
    target = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"
    MlflowClient(target).create_experiment("cifar_exp")
    done = _round_trip(uri, tmp_path / "records", target)
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
        kept = {k: v for k, v in run.data.metrics.items() if not k.startswith("system/")}
        assert copy.data.metrics == kept
        history = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_loss")]
        assert [(m.step, m.value) for m in target_client.get_metric_history(copy.info.run_id, "val_loss")] == history
        parent = run.data.tags.get("mlflow.parentRunId")
        assert copy.data.tags.get("mlflow.parentRunId") == (parent and new_id[parent])
        if run.data.tags.get("best_run_id"):
            assert copy.data.tags["best_run_id"] == new_id[run.data.tags["best_run_id"]]
        assert not target_client.list_artifacts(copy.info.run_id)  # evidence, not models

    before, _ = report("decay", uri=uri)
    after, _ = report("decay", uri=target)
    columns = ["configuration", "runs", "test_accuracy_mean", "ci_low", "ci_high", "verdict", "test_loss_mean"]
    assert after[columns].equals(before[columns])

    again = records.import_records(target_client, "cifar_exp", tmp_path / "records")
    assert not again.imported and len(again.already) == 5 and len(_runs(target)) == 5 + 0


def test_a_sweep_on_the_imported_store_skips_what_its_records_finished(trained, tmp_path):
    uri, overrides = trained
    target = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    MlflowClient(target).create_experiment("cifar_exp")
    _round_trip(uri, tmp_path / "records", target)
    again = [o.replace(uri, target) for o in overrides] + ["resume=auto"]
    done = cli(tmp_path, *again)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (done.stdout + done.stderr).count("already FINISHED as run") == 4
    trainings = [r for r in _runs(target) if "test_accuracy" in r.data.metrics]
    assert len(trainings) == 4 and all(records.TAG_RECORD_OF in r.data.tags for r in trainings)
    with pytest.raises(ModelError, match="imported from a record of run"):
        logged_model_id(MlflowClient(target), trainings[0].info.run_id)


def test_an_import_cut_short_is_imported_again_without_duplicates(trained, tmp_path, monkeypatch):
    uri, _ = trained
    target = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"
    MlflowClient(target).create_experiment("cifar_exp")
    main(["export", str(tmp_path / "records"), "--uri", uri])
    finish = records._finish
    calls = []

    def dies_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        finish(*args, **kwargs)

    monkeypatch.setattr(records, "_finish", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        records.import_records(MlflowClient(target), "cifar_exp", tmp_path / "records")
    assert sum(r.info.status == "RUNNING" for r in _runs(target)) == 3
    monkeypatch.setattr(records, "_finish", finish)

    # this process is alive: its half-written runs are another command's at work, not to be touched
    with pytest.raises(TrackingError, match="another command is writing it"):
        records.import_records(MlflowClient(target), "cifar_exp", tmp_path / "records")

    monkeypatch.setattr(records, "is_stale", lambda run: True)  # as once its process has died
    done = records.import_records(MlflowClient(target), "cifar_exp", tmp_path / "records")
    assert len(done.imported) == 3 and len(done.already) == 2
    runs = _runs(target)
    assert len(runs) == 5 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags[records.TAG_RECORD_OF] for r in runs}) == 5


def test_a_bad_record_stops_the_import_before_anything_is_written(trained, tmp_path, capsys):
    uri, _ = trained
    folder = tmp_path / "records"
    main(["export", str(folder), "--uri", uri])
    victim = sorted(folder.rglob("*.json"))[0]
    victim.write_text(victim.read_text()[:200])
    target = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"
    with pytest.raises(SystemExit) as stop:
        main(["import", str(folder), "--uri", target])
    assert stop.value.code == 2
    said = capsys.readouterr().err
    assert said.startswith(f"error: {victim}: not a run record") and "nothing was imported" in said
    assert not (tmp_path / "other").exists()

    victim.write_text(json.dumps({"format": 1, "run_id": "not an id"}))
    with pytest.raises(TrackingError, match="not a run record"):
        records.read_records(folder)


def test_export_writes_whole_files_and_refuses_unknown_experiments(trained, tmp_path, capsys):
    uri, _ = trained
    folder = tmp_path / "records"
    main(["export", str(folder), "--uri", uri, "--experiment", "decay"])
    written = sorted(folder.rglob("*"))
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


def test_the_console_script_hands_records_on():
    done = subprocess.run(
        [sys.executable, "-m", "cifar_exp.cli", "records", "import", "/nonexistent/records"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "no records folder /nonexistent/records" in done.stderr


def test_a_full_disk_leaves_the_records_written_whole_and_no_partial_file(trained, tmp_path, monkeypatch, capsys):
    uri, _ = trained
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
