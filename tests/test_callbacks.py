"""trainer.restore_best's callback: the lowest-val_loss epoch's weights, kept across a kill and a resume."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cifar_exp.callbacks import BestEpoch


def tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    return model


def epoch(callback: BestEpoch, model: keras.Model, number: int, val_loss: float) -> None:
    model.set_weights([np.full((2, 1), float(number)), np.zeros(1)])
    callback.on_epoch_end(number, {"val_loss": val_loss})


def test_restores_the_weights_of_the_lowest_val_loss_epoch(tmp_path):
    model = tiny_model()
    best = BestEpoch(tmp_path)
    best.set_model(model)
    for number, loss in enumerate([3.0, 1.0, 2.0, 1.5]):
        epoch(best, model, number, loss)
    assert best.restore() == 1 and model.get_weights()[0][0, 0] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-epoch-0000.weights.h5", "best-epoch-0001.weights.h5"]


def test_a_resumed_run_keeps_the_best_of_its_checkpointed_epochs(tmp_path):
    model = tiny_model()
    first = BestEpoch(tmp_path)
    first.set_model(model)
    for number, loss in enumerate([3.0, 1.0, 0.5]):
        epoch(first, model, number, loss)
    # Killed after epoch 2's best was written but before its checkpoint: the resumed history has 2 epochs.
    resumed = BestEpoch(tmp_path, {"val_loss": [3.0, 1.0]})
    resumed.set_model(model)
    assert resumed.best_epoch == 1 and resumed.best == 1.0
    assert not (tmp_path / "best-epoch-0002.weights.h5").exists()
    epoch(resumed, model, 2, 1.2)
    epoch(resumed, model, 3, 0.9)
    assert resumed.restore() == 3 and model.get_weights()[0][0, 0] == 3.0


def test_nothing_to_restore_without_validation_logs(tmp_path):
    best = BestEpoch(tmp_path)
    best.set_model(tiny_model())
    best.on_epoch_end(0, {"loss": 1.0})
    assert best.restore() is None


def test_a_validation_loss_gone_nan_stops_training_and_fails_the_run_as_diverged():
    """The training loss can stay finite while the model already answers NaN: Keras' TerminateOnNaN misses it."""
    from omegaconf import OmegaConf

    from cifar_exp.callbacks import StopWhenValidationDiverges
    from cifar_exp.errors import TrainingDiverged
    from cifar_exp.train import _check_history

    model = tiny_model()
    x, y = np.ones((8, 2)), np.ones((8, 1))
    history = model.fit(
        x,
        y,
        validation_data=(np.full((4, 2), np.nan), np.ones((4, 1))),
        epochs=5,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN(), StopWhenValidationDiverges()],
    ).history
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"]).all() and np.isnan(history["val_loss"][0])
    cfg = OmegaConf.create({"trainer": {"epochs": 5, "max_minutes": None}})
    with pytest.raises(TrainingDiverged, match="validation loss became nan at epoch 1"):
        _check_history(None, cfg, history)


def test_an_epoch_cut_short_by_a_nan_loss_is_not_checkpointed(tmp_path):
    """TerminateOnNaN ends the epoch early, and Keras still calls on_epoch_end: checkpointing its NaN weights as a
    finished epoch would have resume=auto continue from them."""
    from cifar_exp import checkpoint
    from cifar_exp.callbacks import EpochCheckpoint

    model = tiny_model()
    recorder = EpochCheckpoint(tmp_path)
    model.fit(
        np.ones((8, 2)),
        np.full((8, 1), np.nan),
        batch_size=2,
        epochs=3,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN(), recorder],
    )
    assert len(recorder.history["loss"]) == 1 and np.isnan(recorder.history["loss"][0])
    assert checkpoint.newest(tmp_path) is None
