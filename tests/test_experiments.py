"""Every experiment of the report composes and trains for one epoch on tiny generated data."""

from __future__ import annotations

import pytest
from conftest import compose_config, tiny
from mlflow.tracking import MlflowClient

from cifar_exp.config import PROJECT_ROOT
from cifar_exp.validation import validate

EXPERIMENTS = sorted(p.stem for p in (PROJECT_ROOT / "experiments").glob("*.yaml"))


def _sweep_values(name: str) -> list[str]:
    """The first value of each swept key of the experiment, as overrides (one job of its sweep)."""
    cfg = compose_config([f"+experiment={name}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params or {}
    return [f"{key}={str(values).split(',')[0]}" for key, values in params.items()]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_one_epoch(name, npz_dir, store_uri):
    from cifar_exp.train import train

    overrides = [
        f"+experiment={name}",
        *_sweep_values(name),
        *tiny(npz_dir, store_uri),
        "data.train_size=200",
    ]
    cfg = compose_config(overrides)
    validate(cfg)
    outcome = train(cfg)
    assert 0 <= outcome.metrics["test_accuracy"] <= 1 and len(outcome.history["loss"]) == 1
    client = MlflowClient(store_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cifar_exp").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["experiment"] == name
    assert run.data.params["trainer.epochs"] == "1"
