"""The report command: the statistics and verdicts on constructed numbers and runs, the report's figures in one
place, and the tables, tags, curves and the report-all run from a real store holding finished tiny sweeps."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import PROJECT_ROOT, artifact_paths, cli, tiny
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from scipy import stats

from cifar_exp.errors import ReportError
from cifar_exp.report import comparison_table, main, report, to_markdown, verdict_tag
from cifar_exp.reported import PRINTED_EPOCHS, experiment_spec, printed_epochs
from cifar_exp.verdicts import shortfall, t_interval, verdict

# The statistics and the verdict, on constructed numbers


def test_t_interval_is_the_student_t_interval_of_the_mean():
    mean, low, high = t_interval([0.50, 0.52, 0.54])
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t(0.975, 2 dof) * s / sqrt(n)
    assert mean == pytest.approx(0.52) and low == pytest.approx(0.52 - half) and high == pytest.approx(0.52 + half)
    assert stats.t.interval(0.95, 2, loc=mean, scale=stats.sem([0.50, 0.52, 0.54])) == pytest.approx((low, high))
    assert t_interval([0.4, 0.4]) == (pytest.approx(0.4), pytest.approx(0.4), pytest.approx(0.4))  # no spread
    mean, low, high = t_interval([0.3])
    assert mean == 0.3 and math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize(
    "figure,expected",
    [
        (0.52, "reproduced"),  # inside the interval
        (0.471, "reproduced"),  # just inside its lower edge (0.4703)
        (0.470, "higher by 5.00 pts"),  # just outside it
        (0.60, "lower by 8.00 pts"),  # the report's figure above the interval: we measured less
        (0.45, "higher by 7.00 pts"),  # below it: we measured more
        (None, "no figure"),
        (math.nan, "no figure"),
    ],
)
def test_verdict_against_an_interval(figure, expected):
    mean, low, high = t_interval([0.50, 0.52, 0.54])
    assert verdict(mean, low, high, figure) == expected


def test_verdict_of_one_seed_and_of_an_edge():
    assert verdict(0.5, math.nan, math.nan, 0.5) == "1 seed: no interval"
    assert verdict(0.5, math.nan, math.nan, None) == "no figure"
    assert verdict(0.5, 0.45, 0.55, 0.55) == "reproduced"  # the edges belong to the interval


def test_shortfall_names_missing_seeds_and_epochs_without_extrapolating():
    assert shortfall(3, 100, 100, 100) == ""
    assert shortfall(2, 100, 100, 100) == "2 seeds (< 3)"
    assert shortfall(1, 41, 41, 150) == "1 seed (< 3); 41 of 150 epochs"
    assert shortfall(5, 91, 100, 100) == "91-100 of 100 epochs"


def _run(
    configuration: str,
    seed: int,
    accuracy: float,
    figure=None,
    epochs: int = 100,
    epochs_run=None,
    loss: float = 2.0,
    experiment: str = "constructed",
    **params,
) -> SimpleNamespace:
    """What comparison_table reads of an MLflow run, without a store."""
    tags = {"experiment": experiment, **({"report_test_accuracy": str(figure)} if figure is not None else {})}
    metrics = {
        "test_accuracy": accuracy,
        "test_loss": loss,
        "val_accuracy": accuracy,
        "epoch_seconds": 4.0,
        **({"epochs_run": epochs_run} if epochs_run else {}),
    }
    return SimpleNamespace(
        info=SimpleNamespace(status="FINISHED", run_name=f"{configuration}-s{seed}", run_id=f"{configuration}{seed}"),
        data=SimpleNamespace(
            params={"seed": str(seed), "trainer.epochs": str(epochs), "dropout.name": configuration, **params},
            metrics=metrics,
            tags=tags,
        ),
    )


def test_table_gives_each_constructed_arm_its_verdict():
    """An experiment without a YAML takes its figures from the runs' tags (the report's, as train.py set them)."""
    three = (0.50, 0.52, 0.54)
    runs = [
        *(_run("inside", s, a, figure=0.52) for s, a in enumerate(three)),
        *(_run("above", s, a, figure=0.60) for s, a in enumerate(three)),
        *(_run("below", s, a, figure=0.45) for s, a in enumerate(three)),
        _run("one_seed", 0, 0.50, figure=0.50),
        *(_run("no_figure", s, a) for s, a in enumerate(three)),
        *(_run("stopped", s, a, figure=0.52, epochs_run=41) for s, a in enumerate(three[:2])),
        SimpleNamespace(
            info=SimpleNamespace(status="FAILED", run_name="failed-s0"),
            data=SimpleNamespace(params={}, metrics={}, tags={}),
        ),
    ]
    table = comparison_table(runs).set_index("configuration")
    assert dict(table["verdict"]) == {
        "dropout.name=inside": "reproduced",
        "dropout.name=above": "lower by 8.00 pts",
        "dropout.name=below": "higher by 7.00 pts",
        "dropout.name=one_seed": "1 seed: no interval",
        "dropout.name=no_figure": "no figure",
        "dropout.name=stopped": "reproduced",
    }
    assert table.loc["dropout.name=inside", "runs"] == 3 and table.loc["dropout.name=inside", "seeds"] == 3
    assert table.loc["dropout.name=above", "difference_pts"] == pytest.approx(-8.0)
    assert table.loc["dropout.name=inside", "short_of_protocol"] == ""
    assert table.loc["dropout.name=one_seed", "short_of_protocol"] == "1 seed (< 3)"
    assert table.loc["dropout.name=stopped", "short_of_protocol"] == "2 seeds (< 3); 41 of 100 epochs"
    assert table.loc["dropout.name=inside", "test_loss_mean"] == pytest.approx(2.0)

    markdown = to_markdown(table.reset_index(), "constructed")
    assert "| dropout.name=inside | 100 | 3 | 52.00% | 47.03 to 56.97% | 52.00% | reproduced | 2.0000 |" in markdown
    assert "| dropout.name=stopped | 41 of 100 | 2 |" in markdown and "2 seeds (< 3); 41 of 100 epochs" in markdown
    assert "Student-t" in markdown
    tag = verdict_tag(table.reset_index())
    assert "dropout.name=above: lower by 8.00 pts" in tag
    assert "dropout.name=one_seed: 1 seed: no interval [1 seed (< 3)]" in tag


def test_figures_and_length_come_from_the_experiment_yaml():
    """decay: the report's 11.95% and loss 3.93 for both decay-0.05 arms (lr 1e-3 and 1e-4), none for decay 0."""
    runs = [
        _run(
            "baseline", s, 0.12 + 0.002 * s, experiment="decay", epochs=10, **{"optimizer.decay": d, "optimizer.lr": lr}
        )
        for d in ("0.05", "0.0")
        for lr in ("0.001", "0.0001")
        for s in range(3)
    ]
    table = comparison_table(runs, "decay").set_index("configuration")
    for lr in ("0.001", "0.0001"):
        row = table.loc[f"optimizer.decay=0.05, optimizer.lr={lr}"]
        assert row["report_test_accuracy"] == 0.1195 and row["report_test_loss"] == pytest.approx(3.9301, abs=1e-4)
        assert row["verdict"] == "reproduced" and row["short_of_protocol"] == "10 of 100 epochs"
        assert row["report_note"].startswith("collapsed to 11.95%")
        assert table.loc[f"optimizer.decay=0.0, optimizer.lr={lr}", "verdict"] == "no figure"


def test_one_configuration_pools_its_seeds_under_its_run_name():
    runs = [_run("winning", s, 0.55 + 0.01 * s, experiment="winning", epochs=150) for s in range(3)]
    table = comparison_table(runs)
    assert list(table["configuration"]) == ["winning"] and table.loc[0, "runs"] == 3
    assert table.loc[0, "report_test_accuracy"] == 0.5602 and table.loc[0, "verdict"] == "reproduced"


def test_each_report_figure_has_one_home_that_agrees_with_the_transcription():
    """experiments/*.yaml hold the figures the code uses; the transcribed final_figures.csv must agree."""
    with open(PRINTED_EPOCHS.parent / "final_figures.csv") as rows:
        transcribed = {row["experiment"]: row for row in csv.DictReader(rows)}
    for name, row in transcribed.items():
        figures = [f for f in experiment_spec(name).figures if f.get("test_accuracy") is not None]
        assert figures, f"experiments/{name}.yaml gives no figure"
        for figure in figures:
            assert figure["test_accuracy"] == float(row["test_accuracy"])
            assert figure["test_loss"] == pytest.approx(float(row["test_loss"]), abs=1e-9)
    assert experiment_spec("winning").full_epochs == 150 and experiment_spec("decay").full_epochs == 100


def test_printed_epochs_ship_with_the_package():
    decay = printed_epochs("decay")
    assert decay["val_accuracy"] == (
        [94, 95, 96, 97, 98, 99, 100],
        [0.1192, 0.1188, 0.1191, 0.1197, 0.1196, 0.12, 0.1195],
    )
    assert len(decay["val_loss"][0]) == 7
    winning = printed_epochs("winning")
    assert len(winning["val_loss"][0]) == 19 and len(winning["val_accuracy"][0]) == 14  # epochs 1-5: no val_acc
    assert printed_epochs("learning_rate") == {"val_accuracy": ([], []), "val_loss": ([], [])}


def test_decay_sweeps_both_readings_of_the_reports_learning_rate():
    cfg = OmegaConf.load(PROJECT_ROOT / "experiments" / "decay.yaml")
    assert cfg.hydra.sweeper.params["optimizer.lr"] == "1e-3,1e-4"
    assert cfg.hydra.sweeper.params["optimizer.decay"] == "0.05,0.0"


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

    main(["--all", "--uri", decay_sweep, "--also-from", other])
    assert "| decay | optimizer.decay=0.05 | 1 | 3 |" in capsys.readouterr().out


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


def test_a_seed_run_twice_counts_once_with_its_longest_run():
    runs = [
        _run("decay", 0, 0.104, epochs_run=31),
        _run("decay", 0, 0.108, epochs_run=41),
        _run("decay", 1, 0.095, epochs_run=42),
        _run("decay", 2, 0.100, epochs_run=41),
    ]
    row = comparison_table(runs).iloc[0]
    assert row["runs"] == 3 and row["seeds"] == 3 and row["epochs_run_min"] == 41
    assert row["test_accuracy_mean"] == pytest.approx((0.108 + 0.095 + 0.100) / 3)
