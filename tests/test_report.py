"""The report command builds its table and plot from a real store holding a finished tiny sweep."""

from __future__ import annotations

import pytest
from conftest import cli, tiny
from mlflow.tracking import MlflowClient

from cifar_exp.report import ReportError, main, report


@pytest.fixture(scope="module")
def decay_sweep(tmp_path_factory, npz_dir):
    tmp_path = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    done = cli(tmp_path, "--multirun", "+experiment=decay", *tiny(npz_dir, uri), "seed=0,1", "data.train_size=200")
    assert done.returncode == 0, done.stderr[-3000:]
    return uri


def test_table_pools_seeds_and_shows_the_report_figure(decay_sweep, capsys):
    table, markdown = report("decay", uri=decay_sweep)
    assert list(table["configuration"]) == ["optimizer.decay=0.05", "optimizer.decay=0.0"]
    assert list(table["runs"]) == [2, 2] and list(table["epochs"]) == [1, 1]
    assert list(table["epochs_run_min"]) == [1, 1] and list(table["epochs_run_max"]) == [1, 1]
    assert table.loc[0, "report_test_accuracy"] == pytest.approx(0.1195)
    assert table["test_accuracy_std"].notna().all()
    assert "11.95%" in markdown and "±" in markdown

    main(["decay", "--uri", decay_sweep])
    assert "optimizer.decay=0.05" in capsys.readouterr().out

    client = MlflowClient(decay_sweep)
    parent = client.search_runs([client.get_experiment_by_name("cifar_exp").experiment_id],
                                filter_string="attributes.run_name = 'sweep-decay'")[0]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert logged == {"report/val_accuracy_curves.png", "report/comparison.md", "report/comparison.csv"}
    assert parent.data.tags["mlflow.note.content"].startswith("### decay: measured here vs the 2017 report")


def test_unknown_experiment_is_a_clear_error(decay_sweep):
    with pytest.raises(ReportError, match="no sweep of experiment 'learning_rate'"):
        report("learning_rate", uri=decay_sweep)
