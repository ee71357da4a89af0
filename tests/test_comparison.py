"""One experiment's comparison table, from constructed runs (no store)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cifar_exp.comparison import comparison_table, to_markdown, verdict_tag


def _run(
    configuration: str,
    seed: int,
    accuracy: float,
    figure=None,
    epochs: int = 100,
    epochs_run=None,
    loss: float = 2.0,
    experiment: str = "constructed",
    fingerprint: str = "5acaff8b5c9f0000",
    **params,
) -> SimpleNamespace:
    """What comparison_table reads of an MLflow run, without a store."""
    tags = {
        "experiment": experiment,
        "dataset_fingerprint": fingerprint,
        **({"report_test_accuracy": str(figure)} if figure is not None else {}),
    }
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


def test_runs_on_other_data_are_another_row_not_pooled():
    """The same configuration and seed on a dataset of another fingerprint (another copy, changed files) is not the
    same result: it must neither join the arm's mean nor replace one of its seeds."""
    runs = [_run("baseline", s, 0.50 + 0.001 * s) for s in range(3)]
    runs += [_run("baseline", s, 0.01, fingerprint="d70da3a972b80000", epochs_run=200) for s in (0, 5)]
    table = comparison_table(runs).set_index("configuration")
    assert list(table.index) == ["baseline (data 5acaff8b5c9f)", "baseline (data d70da3a972b8)"]
    assert table.loc["baseline (data 5acaff8b5c9f)", "runs"] == 3
    assert table.loc["baseline (data 5acaff8b5c9f)", "test_accuracy_mean"] == pytest.approx(0.501)
    assert table.loc["baseline (data d70da3a972b8)", "runs"] == 2


def test_seconds_per_epoch_is_the_typical_epoch_not_the_last():
    """A run's last epoch took 1,570 s (the machine was paused): the table takes each run's median when given."""
    runs = [_run("decay", s, 0.10) for s in range(2)]
    assert comparison_table(runs).iloc[0]["seconds_per_epoch"] == 4.0  # the last epoch's, without the medians
    row = comparison_table(runs, epoch_seconds={"decay0": 60.0, "decay1": 80.0}).iloc[0]
    assert row["seconds_per_epoch"] == 70.0


def test_an_interval_stays_within_an_accuracys_range():
    """Three near-chance seeds give a t-interval reaching below 0%: no accuracy lies there."""
    row = comparison_table([_run("sgd", s, a) for s, a in enumerate((0.002, 0.03, 0.004))]).iloc[0]
    assert row["ci_low"] == 0.0 and row["ci_high"] > row["test_accuracy_mean"]
