"""The report command builds its table and plot from a real store holding a finished tiny sweep."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import cli, tiny
from mlflow.tracking import MlflowClient

from cifar_exp.errors import ReportError
from cifar_exp.report import main, report, to_markdown


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


def test_runs_stopped_by_the_time_budget_show_the_epochs_they_ran():
    row = dict(configuration="dropout.name=report_exp3", epochs=100, runs=2, test_accuracy_mean=0.4851,
               test_accuracy_std=0.002, final_val_accuracy=0.49, seconds_per_epoch=4.2, report_test_accuracy=0.4917,
               report_note="49.17% after 100 epochs")
    stopped = to_markdown(pd.DataFrame([{**row, "epochs_run_min": 91, "epochs_run_max": 92}]), "dropout")
    assert "| dropout.name=report_exp3 | 91-92 of 100 | 2 | 48.51% ± 0.20 | 49.17% |" in stopped
    complete = to_markdown(pd.DataFrame([{**row, "epochs_run_min": 100, "epochs_run_max": 100}]), "dropout")
    assert "| dropout.name=report_exp3 | 100 | 2 |" in complete


def test_unknown_experiment_is_a_clear_error(decay_sweep):
    with pytest.raises(ReportError, match="no sweep of experiment 'learning_rate'"):
        report("learning_rate", uri=decay_sweep)
