"""The model registry: a sweep's best run under a name, ``@best`` moving only to a better version; any run on
request; the registered name from ``tracking.register_as``."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from conftest import compose_config
from mlflow.tracking import MlflowClient

from cifar_exp.errors import ConfigError, ModelError
from cifar_exp.sweep import registered_name
from cifar_exp.tracking import log_keras_model, tracked_run
from cifar_exp.tracking.registry import register_best, register_run

LABELS = {"label_mode": "fine", "class_names": ["a", "b", "c"], "coarse_names": ["x"], "fine_to_coarse": [0, 0, 0]}


def run_with_model(uri: str, accuracy: float) -> str:
    """A finished run with a small logged Keras model and a test accuracy."""
    model = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")],
        name="tiny",
    )
    with tracked_run(uri, "t", f"acc{accuracy}") as run:
        log_keras_model(run, model, LABELS, np.zeros((2, 32, 32, 3), np.uint8), step=1)
        run.log_metrics({"test_accuracy": accuracy})
    return run.run_id


def test_best_moves_only_to_a_version_that_scored_at_least_as_high(store_uri):
    client = MlflowClient(store_uri, registry_uri=store_uri)
    good, worse = run_with_model(store_uri, 0.5), run_with_model(store_uri, 0.3)
    assert register_best(client, good, "m") == "models:/m@best (version 1)"
    assert register_best(client, worse, "m") == "models:/m/2 (@best stays on a version with a higher test accuracy)"
    assert client.get_model_version_by_alias("m", "best").run_id == good
    assert register_run(client, worse, "m").version == "2"  # on request the alias moves, the version is reused
    assert client.get_model_version_by_alias("m", "best").run_id == worse
    version = client.get_model_version("m", "1")
    assert version.tags == {"test_accuracy": "0.5000"} and version.run_id == good
    (output,) = client.get_run(good).outputs.model_outputs  # the UI finds the versions through this tag
    versions = json.loads(client.get_logged_model(output.model_id).tags["mlflow.modelVersions"])
    assert [(v["name"], str(v["version"])) for v in versions] == [("m", "1")]


def test_a_run_without_a_model_is_said(store_uri):
    with tracked_run(store_uri, "t", "bare") as run:
        run.log_metrics({"test_accuracy": 0.1})
    client = MlflowClient(store_uri, registry_uri=store_uri)
    with pytest.raises(ModelError, match="logged no MLflow Model"):
        register_run(client, run.run_id, "m")
    assert register_best(client, run.run_id, "m").startswith("not registered (run ")
    client.set_terminated(run.run_id, "FAILED")
    with pytest.raises(ModelError, match="is FAILED: it logged no model.*continue it with the command"):
        register_run(client, run.run_id, "m")


@pytest.mark.parametrize("alias", ["v1", "latest", "has space"])
def test_an_alias_mlflow_would_refuse_is_said_before_anything_is_registered(store_uri, alias):
    with tracked_run(store_uri, "t", "bare") as run:
        run.log_metrics({"test_accuracy": 0.1})
    client = MlflowClient(store_uri, registry_uri=store_uri)
    with pytest.raises(ModelError, match=f"--alias {alias}: .*Choose another alias"):
        register_run(client, run.run_id, "m", alias)
    assert client.search_registered_models() == []


def test_the_registered_name_comes_from_tracking_register_as():
    def name(*overrides: str):
        return registered_name(compose_config(["+experiment=decay", *overrides], return_hydra_config=True))

    assert name() == "cifar_exp-sweep-decay"
    assert name("tracking.register_as='{sweep}-v2'") == "sweep-decay-v2"  # quoted: braces are Hydra syntax
    assert name("tracking.register_as=decay-long") == "decay-long"
    assert name("tracking.register_as=null") is None
    with pytest.raises(ConfigError, match="tracking.register_as"):
        name("tracking.register_as='{nope}'")


def test_registering_or_loading_a_sweep_parent_names_its_best_job(store_uri):
    from cifar_exp.errors import ModelError
    from cifar_exp.tracking import client_for, experiment_id, prepare_store
    from cifar_exp.tracking.registry import logged_model_id

    prepare_store(store_uri)
    client = client_for(store_uri)
    parent = client.create_run(
        experiment_id(client, "e"), tags={"cifar_exp.role": "sweep", "best_run_id": "a" * 32}
    ).info.run_id
    with pytest.raises(ModelError, match=f"is a sweep run, which trains no model; its best job is run {'a' * 32}"):
        logged_model_id(client, parent)
    from cifar_exp import model_ref  # cifar-exp predict / evaluate / serve take the same run ids

    with pytest.raises(ModelError, match=f"is a sweep run, which trains no model; its best job is run {'a' * 32}"):
        model_ref.load(parent, store_uri)


def test_a_model_address_another_storage_cannot_serve_is_one_paragraph(store_uri, monkeypatch):
    """An s3:// (or gs://, https://) model that its storage's client cannot fetch (no credentials, no network)."""
    import mlflow.artifacts

    from cifar_exp import model_ref
    from cifar_exp.errors import ModelError

    def no_credentials(**_):
        raise RuntimeError("Unable to locate credentials")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", no_credentials)
    with pytest.raises(ModelError, match="s3://bucket/model could not be downloaded .RuntimeError: Unable to locate"):
        model_ref.load("s3://bucket/model", store_uri)
