"""The Keras callbacks of a run: epoch timing, test-set curves, the time budget, per-epoch checkpoints,
per-epoch metric logging and a search's pruning. Each adds to or acts on the epoch's ``logs``; later callbacks see
what earlier ones added."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import keras
import numpy as np

from cifar_exp import checkpoint, optim
from cifar_exp.tracking import Run


class EpochStats(keras.callbacks.Callback):
    """Adds ``epoch_seconds``, ``images_per_second`` (training part of the epoch) and ``lr`` to the epoch logs."""

    def __init__(self, train_images: int):
        super().__init__()
        self.train_images = train_images

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.started = self.train_ended = time.perf_counter()
        self.in_training = True

    def on_test_begin(self, logs: Optional[dict] = None) -> None:
        if getattr(self, "in_training", False):
            self.train_ended, self.in_training = time.perf_counter(), False

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        now = time.perf_counter()
        train_seconds = (self.train_ended if not self.in_training else now) - self.started
        logs = logs if logs is not None else {}
        logs["epoch_seconds"] = now - self.started
        logs["images_per_second"] = self.train_images / max(train_seconds, 1e-9)
        logs["lr"] = optim.current_learning_rate(self.model.optimizer)


class TestEachEpoch(keras.callbacks.Callback):
    """Adds ``epoch_test_loss`` and ``epoch_test_accuracy`` to the epoch logs (``trainer.test_each_epoch``),
    for learning curves on the test set itself; the validation split stays what the run selects on."""

    def __init__(self, x_test: np.ndarray, y_test: np.ndarray):
        super().__init__()
        self.x_test, self.y_test = x_test, y_test

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        scores = self.model.evaluate(self.x_test, self.y_test, batch_size=256, verbose=0, return_dict=True)
        if logs is not None:
            logs["epoch_test_loss"], logs["epoch_test_accuracy"] = scores["loss"], scores["accuracy"]


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the end of the epoch after which another epoch of the same length would overrun
    ``trainer.max_minutes``."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.started = seconds, time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        now = time.perf_counter()
        if now - self.started + (now - self.epoch_started) > self.seconds:
            self.model.stop_training = True


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes a checkpoint at the end of every epoch, holding the logs of all epochs so far; its ``history``
    is the run's whole history, resumed epochs included."""

    def __init__(self, folder: Path, history: Optional[dict[str, list[float]]] = None):
        super().__init__()
        self.folder = folder
        self.history = {k: list(v) for k, v in (history or {}).items()}

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        checkpoint.save(self.folder, epoch + 1, self.model, self.history)


class MetricsLogger(keras.callbacks.Callback):
    """Logs every epoch's logs to MLflow, step = epoch number (0-based), synchronously.

    Written here rather than using ``mlflow.keras.MlflowCallback``, which also logs un-stepped
    ``validation_*`` metrics at every validation pass and logs asynchronously.
    """

    def __init__(self, run: Run):
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.run.log_metrics({k: float(v) for k, v in (logs or {}).items()}, step=epoch)


class ReportToStudy(keras.callbacks.Callback):
    """Reports the epoch's ``metric`` to an Optuna trial (step = epoch, from 0) and stops training when the study's
    pruner prunes the trial; ``pruned_at`` is then the number of epochs run, also stored on the trial."""

    def __init__(self, trial: Any, metric: str):
        super().__init__()
        self.trial, self.metric = trial, metric
        self.pruned_at: Optional[int] = None

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.trial.report(float((logs or {})[self.metric]), epoch)
        if self.trial.should_prune():
            from cifar_exp.search import PRUNED_ATTR

            self.pruned_at = epoch + 1
            self.trial.set_user_attr(PRUNED_ATTR, self.pruned_at)
            self.model.stop_training = True


def tensorboard(log_dir: Path) -> list[keras.callbacks.Callback]:
    """TensorBoard logging needs TensorFlow's summary writer: present under the TF backend only."""
    if keras.backend.backend() != "tensorflow":
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=0, write_graph=False)]
