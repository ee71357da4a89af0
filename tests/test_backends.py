"""The trainer is plain Keras 3: a 1-epoch tiny job runs under every other Keras backend installed here
(TensorFlow, the default, runs every other end-to-end test)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os

import pytest
from conftest import all_runs, cli, tiny

BACKENDS = ["torch", "jax"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_epoch_under_backend(backend, tmp_path, npz_dir, store_uri, monkeypatch):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install -e '.[dev,backends]' adds torch and jax)")
    monkeypatch.setitem(os.environ, "KERAS_BACKEND", backend)
    done = cli(tmp_path, *tiny(npz_dir, store_uri), "augmentation=shift_flip")
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(store_uri)
    assert run.info.status == "FINISHED" and run.data.tags["keras_backend"] == backend
    assert run.data.tags["keras_backend_version"] == importlib.metadata.version(backend)
    assert {"loss", "val_accuracy", "test_accuracy", "images_per_second"} <= set(run.data.metrics)
