"""A run's identity from its config: the hash that finds it again, its name, the report's figure it is judged by."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_config

from cifar_exp.identity import (
    MODELS_WITH_DROPOUT,
    config_hash,
    config_hashes,
    is_bookkeeping,
    report_figure_for,
    run_name,
)
from cifar_exp.models import BUILDERS, build


def test_existing_configs_keep_their_hash():
    """Measured before the schedule, loss, precision, weight-decay, EMA and search keys existed (and while
    ``data.path`` was hashed: those runs are found through the hashes config_hashes adds)."""
    assert config_hash(compose_config([]), location=True) == "29f6889ac8d438bd"
    assert "29f6889ac8d438bd" in config_hashes(compose_config([]), [])
    sgd = compose_config(["optimizer=sgd", "optimizer.momentum=0.9"])
    assert config_hash(sgd, location=True) == "8f5d74943edf25ae" and "8f5d74943edf25ae" in config_hashes(sgd, [])
    decay = compose_config(["+experiment=decay", "optimizer.decay=0.05"])
    assert "5f91ac214d132218" in config_hashes(decay, ["augmentation"])  # as filed under decay before 2026-11-27
    assert config_hash(compose_config(["schedule=cosine"])) != config_hash(compose_config([]))
    assert config_hash(compose_config(["loss.label_smoothing=0.1"])) != config_hash(compose_config([]))


def test_bookkeeping_keys_leave_the_hash_alone():
    base = config_hash(compose_config([]))
    assert config_hash(compose_config(["tracking.experiment=elsewhere", "trainer.verbose=0", "force=true"])) == base
    assert config_hash(compose_config(["seed=1"])) != base
    assert is_bookkeeping("tracking.uri") and is_bookkeeping("resume")
    assert not is_bookkeeping("trainer.epochs") and not is_bookkeeping("tracking_extra")


def test_a_configuration_two_experiments_share_is_one_hash():
    """dropout's baseline arm, augmentation's none arm and decay's lr 1e-4 / decay 0 arm compute the same thing: one
    run serves all three, whichever sweep ran it; a run filed under one of them before the label left the hash
    is found through its old hash by the others."""
    dropout = compose_config(["+experiment=dropout", "dropout=baseline"])
    augmentation = compose_config(["+experiment=augmentation", "augmentation=none"])
    decay = compose_config(["+experiment=decay", "optimizer.decay=0", "optimizer.lr=1e-4"])
    assert config_hash(dropout) == config_hash(augmentation) == config_hash(decay)
    assert config_hash(dropout) != config_hash(compose_config(["+experiment=dropout", "dropout=winning"]))
    as_once_filed = config_hash(augmentation, "augmentation", location=True)
    assert as_once_filed != config_hash(augmentation)
    assert as_once_filed in config_hashes(dropout, ["augmentation", "decay"])
    assert config_hashes(compose_config([]), [])[0] == config_hash(compose_config([]))


def test_where_the_data_lies_leaves_the_hash_alone():
    """``data=local`` and the same folder spelled absolutely (as ``make reproduce`` does) are one configuration; a
    run recorded while the path was hashed is still found under the spelling it used."""
    here = compose_config(["data=local"])
    spelled = compose_config(["data=local", f"data.path={Path(here.data.path).resolve()}"])
    assert here.data.path != spelled.data.path and config_hash(here) == config_hash(spelled)
    assert config_hash(spelled, location=True) in config_hashes(spelled, [])
    assert config_hash(spelled, location=True) not in config_hashes(here, [])
    assert config_hash(compose_config(["data=local", "data.val_split=0"])) != config_hash(here)


def test_report_figure_matches_the_job_settings():
    assert report_figure_for(compose_config(["+experiment=decay", "optimizer.decay=0.05"])).test_accuracy == 0.1195
    assert report_figure_for(compose_config(["+experiment=decay", "optimizer.decay=0"])) is None
    assert report_figure_for(compose_config(["+experiment=sgd", "optimizer=sgd"])).test_accuracy == 0.0211


def test_run_names_say_the_model_and_leave_out_dropout_it_does_not_have():
    assert run_name(compose_config([])) == "adam-lr1e-4-winning-shift_flip-s0"
    assert run_name(compose_config(["model=report_cnn_bn"])) == "report_cnn_bn-adam-lr1e-4-winning-shift_flip-s0"
    fast = compose_config(["model=fast_cnn", "optimizer=sgd", "optimizer.lr=0.2", "seed=1"])
    assert run_name(fast) == "fast_cnn-sgd-lr2e-1-shift_flip-s1"


def test_a_coarse_run_says_so_and_is_never_judged_by_a_100_class_figure():
    cfg = compose_config(["+experiment=decay", "optimizer.decay=0.05", "data.label_mode=coarse"])
    assert run_name(cfg).endswith("-coarse")
    assert report_figure_for(cfg) is None


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_the_run_name_shows_dropout_exactly_for_the_models_that_have_dropout_layers(name):
    """MODELS_WITH_DROPOUT decides whether the dropout profile is part of a run's name: a new model with dropout
    left out of it would give its dropout arms one name."""
    import keras

    model = build(name, num_classes=10, dropout=(0.1, 0.25, 0.5))
    has_dropout = any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    assert has_dropout == (name in MODELS_WITH_DROPOUT)
    assert ("-winning-" in run_name(compose_config([f"model={name}"]))) == has_dropout
