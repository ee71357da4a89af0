"""Every model, optimizer, schedule and training option added beyond the report composes, validates and trains
one tiny epoch; existing configs keep their config hash."""

from __future__ import annotations

import pytest
from conftest import compose_config, tiny
from mlflow.tracking import MlflowClient

from cifar_exp.errors import ConfigError
from cifar_exp.validation import validate

# Together these cover every new option at least once.
COMBINATIONS = {
    "bn-adamw-cosine": ["model=report_cnn_bn", "optimizer=adamw", "schedule=cosine"],
    "fast-sgd-one_cycle-smoothing": [
        "model=fast_cnn",
        "optimizer=sgd",
        "optimizer.lr=0.1",
        "optimizer.momentum=0.9",
        "optimizer.nesterov=true",
        "optimizer.weight_decay=5e-4",
        "schedule=one_cycle",
        "loss.label_smoothing=0.1",
        "trainer.test_each_epoch=true",
    ],
    "resnet-mixed-tta": [
        "model=preact_resnet18",
        "trainer.precision=mixed",
        "trainer.tta_flip=true",
        "trainer.batch_size=64",
    ],
    "ema-constant": ["optimizer.ema=0.9", "schedule=constant", "optimizer.lr=1e-3"],
}


@pytest.mark.parametrize("name", sorted(COMBINATIONS))
def test_option_trains_one_epoch(name, npz_dir, store_uri):
    from cifar_exp.train import train

    cfg = compose_config(
        [
            *COMBINATIONS[name],
            *tiny(npz_dir, store_uri),
            "data.train_size=200",
        ]
    )
    validate(cfg)
    outcome = train(cfg)
    assert 0 <= outcome.metrics["test_accuracy"] <= 1
    assert {"loss", "accuracy", "val_accuracy", "lr"} <= set(outcome.history)
    client = MlflowClient(store_uri)
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == cfg.model.name
    assert int(run.data.params["model.parameters"]) > 0 and int(run.data.params["model.forward_flops"]) > 0


@pytest.mark.parametrize(
    "override,message",
    [
        (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1.0 must be >= 0"),
        (["optimizer.ema=1.0"], "optimizer.ema=1.0 must be null"),
        (["loss.label_smoothing=1.0"], "loss.label_smoothing=1.0 must be in [0, 1)"),
        (
            ["schedule=cosine", "schedule.warmup_fraction=1.0"],
            "schedule.warmup_fraction=1.0 must be a fraction in [0, 1)",
        ),
        (["schedule=cosine", "optimizer.decay=0.05"], "needs optimizer.decay=0"),
        (["trainer.precision=half"], "trainer.precision='half' is not one of float32, mixed"),
    ],
)
def test_out_of_range_options_are_refused(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        validate(compose_config(override))


def test_h5_with_new_options_loads_without_this_package(tmp_path):
    """Label smoothing, a cosine schedule, AdamW and EMA are Keras' own: a fresh process that never imports
    cifar_exp loads the .h5, compiled."""
    import os
    import subprocess
    import sys

    from cifar_exp.train import build_model

    cfg = compose_config(
        ["model=fast_cnn", "optimizer=adamw", "optimizer.ema=0.99", "schedule=cosine", "loss.label_smoothing=0.1"]
    )
    build_model(cfg, 100, 1000).save(tmp_path / "m.h5")
    script = (
        "import sys, keras; m = keras.models.load_model(sys.argv[1]); "
        "print(type(m.loss).__name__, m.loss.label_smoothing, type(m.optimizer).__name__)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "m.h5")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[:3] == ["CategoricalCrossentropy", "0.1", "AdamW"]
