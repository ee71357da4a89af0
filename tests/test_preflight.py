"""What is checked before any work starts (cifar_exp.preflight); end to end, through the command line, in
test_bad_input.py and test_sweep.py."""

from __future__ import annotations

import pytest

from cifar_exp.errors import ConfigError
from cifar_exp.preflight import compose, composition_error, malformed_override


def test_compose_gives_the_projects_config():
    cfg = compose(["optimizer=sgd", "trainer.epochs=3"])
    assert cfg.optimizer.name == "sgd" and cfg.trainer.epochs == 3 and cfg.dropout.name == "winning"


@pytest.mark.parametrize(
    "override,said",
    [
        ("optimizer=adamm", "Could not find 'optimizer/adamm'. Available options in 'optimizer': adam, adamw, sgd"),
        ("dropout=winnig", "the closest option is dropout=winning"),
        ("dropout=WINNING", "the closest option is dropout=winning"),
        ("trainer.epochs=many", "trainer.epochs"),
        ("trainer.epoch=3", "Could not override 'trainer.epoch': not a setting"),
        ("trainer.epoch=3", "the closest setting is trainer.epochs"),
        ("optimizer.lrr=1", "the closest setting is optimizer.lr"),
    ],
)
def test_compose_errors_are_one_paragraph(override, said):
    with pytest.raises(ConfigError) as refused:
        compose([override])
    assert said in str(refused.value) and "\n" not in str(refused.value)
    assert "full_key" not in str(refused.value) and "object_type" not in str(refused.value)  # OmegaConf's own


def test_a_misspelling_far_from_every_option_gets_no_guess():
    with pytest.raises(ConfigError) as refused:
        compose(["trainer.zzz=1"])
    assert "closest" not in str(refused.value)


def test_a_single_runs_hydra_overrides_are_checked_too():
    said = composition_error(["hydra/sweeper=optun", "hydra.run.dir=/tmp/x"])
    assert said is not None and "the closest option is hydra/sweeper=optuna" in said and "\n" not in said


def test_hydras_own_open_settings_keep_hydras_advice_and_its_failures_are_one_paragraph():
    said = composition_error(["hydra.job.env_set.FOO=bar"])
    assert said is not None and "use +hydra.job.env_set.FOO=bar" in said and "not a setting" not in said
    assert composition_error(["+hydra.job.env_set.FOO=bar"]) is None
    said = composition_error(["hydra.sweeper.params.x=1"])  # Hydra itself fails on it with an AssertionError
    assert said is not None and said.startswith("Hydra could not compose this command line") and "\n" not in said


def test_an_error_inside_a_config_file_names_the_closest_setting_without_omegaconfs_internals():
    from omegaconf import OmegaConf

    from cifar_exp.config import TrainerConfig
    from cifar_exp.errors import one_paragraph

    with pytest.raises(Exception) as raised:
        OmegaConf.merge(OmegaConf.structured(TrainerConfig), {"epoch": 1})
    said = one_paragraph(raised.value)
    assert said == "Key 'epoch' not in 'TrainerConfig'; the closest setting is epochs"


def test_a_malformed_override_is_named_and_flags_are_left_to_hydra():
    said = malformed_override(["trainer.epochs=3", "dropout=winning,"])
    assert said is not None and said.startswith("cannot parse the override 'dropout=winning,'")
    assert malformed_override(["--cfg", "job", "trainer.epochs=3"]) is None
    assert composition_error(["--cfg", "job", "optimizer=adamm"]) is None  # Hydra's --cfg says it itself
    assert "Nothing was trained or logged." in composition_error(["optimizer=adamm"])
    assert composition_error(["optimizer=sgd", "hydra.job.chdir=true"]) is None
