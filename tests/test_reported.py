"""What the report says: each figure in one place, its printed epochs shipped with the package."""

from __future__ import annotations

import csv

import pytest
from conftest import PROJECT_ROOT
from omegaconf import OmegaConf

from cifar_exp.reported import PRINTED_EPOCHS, experiment_spec, printed_epochs


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
