"""The report command on a real store holding finished tiny sweeps: the tables, tags, curves, the report-all run,
and runs pooled from a second store (--also-from). The statistics, the table and the report's figures on their
own: test_verdicts.py, test_comparison.py, test_reported.py."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import PROJECT_ROOT, all_runs, artifact_paths, cli, compose_config, tiny
from mlflow.tracking import MlflowClient

from cifar_exp.errors import ReportError
from cifar_exp.identity import config_hash
from cifar_exp.report import main, report
from cifar_exp.verdicts import verdict

# From a real store: tiny finished sweeps through the command line


@pytest.fixture(scope="module")
def decay_sweep(tmp_path_factory, npz_dir):
    tmp_path = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    done = cli(
        tmp_path,
        "--multirun",
        "+experiment=decay",
        *tiny(npz_dir, uri),
        "seed=0,1",
        "data.train_size=200",
        "optimizer.lr=1e-4",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return uri


def _parent(uri: str, name: str):
    client = MlflowClient(uri)
    return client.search_runs(
        [client.get_experiment_by_name("cifar_exp").experiment_id], filter_string=f"attributes.run_name = '{name}'"
    )[0]


def test_table_pools_seeds_and_shows_the_report_figure(decay_sweep, capsys):
    table, markdown = report("decay", uri=decay_sweep)
    assert list(table["configuration"]) == ["optimizer.decay=0.05", "optimizer.decay=0.0"]
    assert list(table["runs"]) == [2, 2] and list(table["epochs"]) == [1, 1]
    assert list(table["epochs_run_min"]) == [1, 1] and list(table["epochs_run_max"]) == [1, 1]
    assert table.loc[0, "report_test_accuracy"] == pytest.approx(0.1195)
    assert table.loc[0, "report_test_loss"] == pytest.approx(3.9301, abs=1e-4)
    assert table["test_accuracy_std"].notna().all() and table["ci_low"].notna().all()
    assert table.loc[1, "verdict"] == "no figure"
    assert table.loc[0, "verdict"] == verdict(*table.loc[0, ["test_accuracy_mean", "ci_low", "ci_high"]], 0.1195)
    assert list(table["short_of_protocol"]) == ["2 seeds (< 3); 1 of 100 epochs"] * 2
    assert "11.95%" in markdown and "3.9301" in markdown

    main(["decay", "--uri", decay_sweep])
    assert "optimizer.decay=0.05" in capsys.readouterr().out

    parent = _parent(decay_sweep, "sweep-decay")
    client = MlflowClient(decay_sweep)
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert logged == {"report/validation_curves.png", "report/comparison.md", "report/comparison.csv"}
    assert parent.data.tags["mlflow.note.content"].startswith("### decay: measured here vs the 2017 report")
    assert parent.data.tags["verdict"] == (
        f"optimizer.decay=0.05: {table.loc[0, 'verdict']} [2 seeds (< 3); 1 of 100 "
        "epochs]; optimizer.decay=0.0: no figure [2 seeds (< 3); 1 of 100 epochs]"
    )


def test_runs_of_another_store_join_the_table_and_the_newest_sweep_gets_the_verdict(
    decay_sweep, npz_dir, tmp_path, capsys
):
    """A lent GPU's store brought back: its seed 2 pools with seeds 0 and 1 here; nothing is copied over."""
    other = f"sqlite:///{tmp_path / 'gpu' / 'mlflow.db'}"
    done = cli(
        tmp_path,
        "--multirun",
        "+experiment=decay",
        *tiny(npz_dir, other),
        "seed=2",
        "data.train_size=200",
        "optimizer.lr=1e-4",
        "optimizer.decay=0.05",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    here = MlflowClient(decay_sweep)
    experiment_here = here.get_experiment_by_name("cifar_exp").experiment_id
    runs_here = {r.info.run_id for r in here.search_runs([experiment_here])}
    main(["decay", "--uri", decay_sweep, "--also-from", other])
    printed = capsys.readouterr().out
    assert "| optimizer.decay=0.05 | 1 | 3 |" in printed  # seeds 0, 1 here and 2 there
    assert "| optimizer.decay=0.0 | 1 | 2 |" in printed
    gpu_parent = _parent(other, "sweep-decay")
    assert gpu_parent.data.tags["verdict"].startswith("optimizer.decay=0.05: ")
    assert "[1 of 100 epochs]" in gpu_parent.data.tags["verdict"]  # 3 seeds: no seed shortfall
    assert {r.info.run_name for r in MlflowClient(other).search_runs([gpu_parent.info.experiment_id])} == {
        "sweep-decay",
        "adam-lr1e-4-decay0.05-baseline-none-s2",
    }
    assert {r.info.run_id for r in here.search_runs([experiment_here])} == runs_here

    main(["--all", "--uri", other, "--also-from", decay_sweep])  # the report-all run goes to --uri's store
    assert "| decay | optimizer.decay=0.05 | 1 | 3 |" in capsys.readouterr().out
    assert _parent(other, "report-all").data.metrics["arms"] == 2
    assert {r.info.run_id for r in here.search_runs([experiment_here])} == runs_here


def test_an_arm_two_experiments_share_is_trained_once_and_judged_in_both(npz_dir, tmp_path):
    """decay's lr 1e-4 / decay 0 arm is augmentation's none arm: the augmentation sweep skips it and judges the run
    the decay sweep made against its own figure, and a seed either experiment adds counts in both. The run is
    re-tagged with the hash it would carry had it been recorded before the experiment label left the hash: the old
    hash is found too."""
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    common = [*tiny(npz_dir, uri), "seed=0", "data.train_size=200"]
    decay = ["+experiment=decay", "optimizer.lr=1e-4", "optimizer.decay=0"]
    done = cli(tmp_path, "--multirun", *decay, *common)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(uri)
    (shared,) = [r for r in all_runs(uri) if r.data.tags.get("experiment") == "decay"]
    as_filed_once = config_hash(compose_config([*decay, *common]), "decay", location=True)
    assert as_filed_once != shared.data.tags["config_hash"]
    client.set_tag(shared.info.run_id, "config_hash", as_filed_once)

    again = cli(tmp_path, "--multirun", "+experiment=augmentation", "augmentation=none", *common)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        f"skipping adam-lr1e-4-baseline-none-s0: this configuration already FINISHED as run {shared.info.run_id}"
        in (again.stdout + again.stderr)
    )
    assert len(all_runs(uri)) == 3  # two sweep parents and the shared run

    table, _ = report("augmentation", uri=uri)
    assert list(table["configuration"]) == ["adam-lr1e-4-baseline-none"] and list(table["runs"]) == [1]
    assert table.loc[0, "test_accuracy_mean"] == pytest.approx(shared.data.metrics["test_accuracy"])
    assert table.loc[0, "report_test_accuracy"] == pytest.approx(0.4942)  # augmentation's figure (decay has none)
    table, _ = report("decay", uri=uri)
    assert list(table["configuration"]) == ["adam-lr1e-4-baseline-none"] and table.loc[0, "verdict"] == "no figure"

    # Another seed of the arm, trained by augmentation's sweep, counts in decay's table too: one arm, the same runs.
    more = cli(tmp_path, "--multirun", "+experiment=augmentation", "augmentation=none", *common, "seed=1")
    assert more.returncode == 0, more.stderr[-3000:]
    for experiment in ("augmentation", "decay"):
        table, _ = report(experiment, uri=uri)
        assert list(table["runs"]) == [2], experiment


def test_sweep_of_another_experiment_is_refused_before_its_verdict_is_overwritten(decay_sweep):
    parent = _parent(decay_sweep, "sweep-decay")
    with pytest.raises(ReportError, match=r"not a sweep of \+experiment=dropout"):
        report("dropout", uri=decay_sweep, sweep_run_id=parent.info.run_id)
    assert MlflowClient(decay_sweep).get_run(parent.info.run_id).data.tags == parent.data.tags
    table, _ = report("decay", uri=decay_sweep, sweep_run_id=parent.info.run_id)
    assert len(table) == 2


def test_unknown_experiment_is_a_clear_error(decay_sweep):
    with pytest.raises(ReportError, match="no sweep of experiment 'learning_rate'"):
        report("learning_rate", uri=decay_sweep)


@pytest.mark.parametrize("argv", [["decay", "--all"], []])
def test_all_or_one_experiment(argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2


def test_all_reports_the_whole_store_in_a_run_of_its_own(decay_sweep, npz_dir, tmp_path, monkeypatch, capsys):
    done = cli(tmp_path, "--multirun", "+experiment=winning", *tiny(npz_dir, decay_sweep), "data.train_size=200")
    assert done.returncode == 0, done.stderr[-3000:]
    from cifar_exp import cli as console

    monkeypatch.setattr(sys, "argv", ["cifar-exp", "report", "all", "--uri", decay_sweep])
    console.main()  # cifar-exp report all
    printed = capsys.readouterr().out
    assert "### The 2017 report, experiment by experiment" in printed
    assert "| decay | optimizer.decay=0.05 | 1 | 2 |" in printed and "| 2 seeds (< 3); 1 of 100 epochs |" in printed
    assert (
        "| winning | adam-lr1e-4-winning-shift_flip | 1 | 1 |" in printed
        and "| 56.02% | 1 seed: no interval |" in printed
    )
    assert "Not in the store yet: learning_rate, dropout, sgd, augmentation." in printed

    client = MlflowClient(decay_sweep)
    run = _parent(decay_sweep, "report-all")
    assert run.info.status == "FINISHED" and run.data.tags["cifar_exp.role"] == "report"
    assert f"Logged to MLflow run {run.info.run_id} (report-all)" in printed
    assert artifact_paths(client, run.info.run_id) == {
        "report/verdicts.png",
        "report/report_all.md",
        "report/report_all.csv",
    }
    assert run.data.metrics["arms"] == 3 and run.data.metrics["no_interval"] == 1
    assert run.data.metrics["no_figure"] == 1 and run.data.metrics["short_of_protocol"] == 3
    assert run.data.tags["mlflow.note.content"].startswith("### The 2017 report")
    table = pd.read_csv(client.download_artifacts(run.info.run_id, "report/report_all.csv", str(tmp_path)))
    assert list(table["experiment"]) == ["decay", "decay", "winning"]
    assert list(table["verdict"])[1:] == ["no figure", "1 seed: no interval"]
    assert np.isnan(table.loc[2, "ci_low"])
    # Every experiment's own sweep parent got its table and verdicts too.
    assert _parent(decay_sweep, "sweep-winning").data.tags["verdict"] == (
        "adam-lr1e-4-winning-shift_flip: 1 seed: no interval [1 seed (< 3); 1 of 150 epochs]"
    )
    assert _parent(decay_sweep, "sweep-decay").data.tags["verdict"].startswith("optimizer.decay=0.05: ")

    main(["--all", "--uri", decay_sweep])  # every invocation is a new report-all run: the store's state then
    experiment_id = client.get_experiment_by_name("cifar_exp").experiment_id
    assert len(client.search_runs([experiment_id], filter_string="attributes.run_name = 'report-all'")) == 2


def test_a_report_all_run_cut_short_is_failed_not_finished(decay_sweep, monkeypatch, capsys):
    """Its run is opened like a training's: the owning process recorded (so a kill -9 is retired by the next
    command), and a store error while logging ends it FAILED, said in the printed report."""
    from mlflow.exceptions import MlflowException

    from cifar_exp.tracking import Run

    def refused(self, metrics, step=0):
        raise MlflowException("the store refused the metrics")

    monkeypatch.setattr(Run, "log_metrics", refused)
    main(["--all", "--uri", decay_sweep])
    printed = capsys.readouterr().out
    client = MlflowClient(decay_sweep)
    experiment_id = client.get_experiment_by_name("cifar_exp").experiment_id
    (newest, *_) = client.search_runs(
        [experiment_id], filter_string="attributes.run_name = 'report-all'", order_by=["start_time DESC"]
    )
    assert newest.info.status == "FAILED" and "the store refused the metrics" in newest.data.tags["error"]
    assert {"host", "pid"} <= set(newest.data.tags)
    assert f"(not logged: the store cannot be written (run {newest.info.run_id} is FAILED): " in printed


def test_all_of_an_empty_store_is_a_clear_error(tmp_path, capsys):
    from cifar_exp.tracking import prepare_store

    prepare_store(f"sqlite:///{tmp_path / 'mlflow.db'}")  # a store with its schema and no experiment yet
    with pytest.raises(SystemExit) as exit_:
        main(["all", "--uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert exit_.value.code == 2 and "no MLflow experiment 'cifar_exp'" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_reproduce_runs_every_experiment_over_seeds_then_the_verdicts():
    done = subprocess.run(
        ["make", "-n", "reproduce", "SEEDS=0,1", "LAUNCHER=joblib", "JOBS=4"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    plan = done.stdout
    assert "for exp in learning_rate dropout decay sgd augmentation winning; do" in plan
    sweep = next(line for line in plan.splitlines() if "--multirun" in line)
    assert "-m cifar_exp --multirun +experiment=$exp " in sweep and " seed=0,1 " in sweep
    assert "hydra/launcher=joblib hydra.launcher.n_jobs=4" in sweep
    assert plan.index("-m cifar_exp.report --all") > plan.index(sweep)
    assert plan.index("-m cifar_exp.records import mlruns/records") < plan.index(sweep)
    assert plan.index("-m cifar_exp.records export mlruns/records") > plan.index("-m cifar_exp.report --all")


def test_the_verdict_goes_to_the_newest_sweep_that_has_ended():
    """A sweep still RUNNING would overwrite the verdict with its own summary when it ends."""
    from types import SimpleNamespace

    from cifar_exp.report_runs import _preference

    def parent(status, start):
        return SimpleNamespace(info=SimpleNamespace(status=status, start_time=start))

    ended, newer_ended, running = parent("FINISHED", 1), parent("KILLED", 2), parent("RUNNING", 3)
    assert max([ended, running, newer_ended], key=_preference) is newer_ended
    assert max([running, parent("RUNNING", 1)], key=_preference) is running
