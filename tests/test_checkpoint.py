"""Per-epoch checkpoints: a round trip restores every model and optimizer variable; a write that fails leaves
the previous checkpoint and no partial file; a damaged one is named with the way out."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from cifar_exp import checkpoint, models, optim
from cifar_exp.errors import CheckpointError


def _model() -> keras.Model:
    model = models.report_cnn(100, (0.1, 0.25, 0.5))
    model.compile(
        optimizer=optim.make_optimizer(OmegaConf.create({"name": "adam", "lr": 1e-3, "decay": 0.0}), 1e-3),
        loss="sparse_categorical_crossentropy",
    )
    return model


def _trained() -> keras.Model:
    model = _model()
    rng = np.random.default_rng(0)
    model.fit(rng.integers(0, 256, (8, 32, 32, 3)).astype("uint8"), np.arange(8), epochs=1, verbose=0)
    return model


def test_round_trip_restores_model_and_optimizer(tmp_path):
    model = _trained()
    history = {"loss": [4.6, 4.5]}
    path = checkpoint.save(tmp_path, 2, model, history)
    assert path.name == "epoch_00002.npz" and checkpoint.newest(tmp_path) == (2, path)
    found = checkpoint.latest(tmp_path)
    assert found is not None and found.epochs_done == 2 and found.history == history
    fresh = _model()
    checkpoint.restore(fresh, found)
    for a, b in zip(fresh.variables + fresh.optimizer.variables, model.variables + model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    checkpoint.save(tmp_path, 3, model, {"loss": [4.6, 4.5, 4.4]})
    assert [p.name for p in tmp_path.glob("epoch_*.npz")] == ["epoch_00003.npz"]  # only the latest is kept


def test_a_failed_write_keeps_the_previous_checkpoint_and_no_partial_file(tmp_path, monkeypatch):
    model = _trained()
    checkpoint.save(tmp_path, 1, model, {"loss": [4.6]})

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError) as failed:
        checkpoint.save(tmp_path, 2, model, {"loss": [4.6, 4.5]})
    # named, so the one paragraph says which disk filled ("while writing <file>"), not "the run records"
    assert failed.value.errno == 28 and failed.value.filename == str(tmp_path / "epoch_00002.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_00001.npz"]


def test_a_damaged_checkpoint_is_named(tmp_path: Path):
    model = _trained()
    path = checkpoint.save(tmp_path, 1, model, {"loss": [4.6]})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=f"the checkpoint {path} is truncated or corrupt.*rm -r"):
        checkpoint.latest(tmp_path)
    assert checkpoint.latest(tmp_path / "none") is None
