"""The Keras callbacks of a run: epoch timing, test-set curves, the time budget, per-epoch checkpoints,
per-epoch metric logging, a search's pruning, system metrics (MLflow's sampler, paused with training), the weights
of the lowest-val_loss epoch (``trainer.restore_best``) and Keras' own TensorBoard writer. Each adds to or acts on
the epoch's ``logs``; later callbacks see what earlier ones added."""

from __future__ import annotations

import math
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
        if not diverged(logs):  # a diverged epoch (cut short by TerminateOnNaN) is not an epoch to continue from
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


def diverged(logs: Optional[dict]) -> bool:
    """Whether the epoch's training or validation loss is NaN or infinite. The training loss can stay finite (1e15)
    while the weights already give NaN on some images: only the validation loss then shows it."""
    return any(not math.isfinite(float(value)) for key, value in (logs or {}).items() if key in ("loss", "val_loss"))


class StopWhenValidationDiverges(keras.callbacks.Callback):
    """Stops training after an epoch whose validation loss is NaN or infinite (Keras' TerminateOnNaN watches the
    training loss only); the run then fails as diverged."""

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if diverged(logs):
            self.model.stop_training = True


class ReportToStudy(keras.callbacks.Callback):
    """Reports the epoch's ``metric`` to an Optuna trial (step = epoch, from 0) and stops training when the study's
    pruner prunes the trial; ``pruned_at`` is then the number of epochs run, also stored on the trial."""

    def __init__(self, trial: Any, metric: str, checkpoint_folder: Path):
        super().__init__()
        self.trial, self.metric = trial, metric
        self.pruned_at: Optional[int] = None
        self.checkpoint_folder = checkpoint_folder

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        """Tell the study where this trial's checkpoints are: a trial is never continued, and if its search is
        killed (-9) the next search on the study fails the trial and removes them."""
        from cifar_exp.search import CHECKPOINT_ATTR

        self.trial.set_user_attr(CHECKPOINT_ATTR, str(self.checkpoint_folder))

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if diverged(logs):  # the epoch's metrics mean nothing; the run fails as diverged
            return
        self.trial.report(float((logs or {})[self.metric]), epoch)
        last = epoch + 1 >= (self.params or {}).get("epochs", epoch + 2)  # a trial that ran all its epochs is complete
        if not last and self.trial.should_prune():
            from cifar_exp.search import PRUNED_ATTR

            self.pruned_at = epoch + 1
            self.trial.set_user_attr(PRUNED_ATTR, self.pruned_at)
            self.model.stop_training = True


def tensorboard(log_dir: Path) -> list[keras.callbacks.Callback]:
    """TensorBoard logging needs TensorFlow's summary writer: present under the TF backend only."""
    if keras.backend.backend() != "tensorflow":
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=0, write_graph=False)]


class SystemMetrics(keras.callbacks.Callback):
    """MLflow's own system metrics monitor on the run while it trains: CPU, memory, disk and network (and NVIDIA
    GPUs, through nvidia-ml-py) averaged every ``interval`` seconds, the run page's "System metrics" tab. A
    resumed run continues the steps it had reached."""

    def __init__(self, run: Run, interval: float, resumed: bool):
        super().__init__()
        self.run, self.interval, self.resumed = run, interval, resumed
        self.monitor: Any = None  # mlflow's SystemMetricsMonitor, while training

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self.monitor = SystemMetricsMonitor(
            self.run.run_id,
            sampling_interval=self.interval,
            resume_logging=self.resumed,
            tracking_uri=self.run.client.tracking_uri,
        )
        self.monitor.start()

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self.monitor is not None:
            self.monitor.finish()  # a run that fails instead ends FAILED, which stops the monitor's thread too
            self.monitor = None


def system_metrics(run: Run, interval: Optional[float], resumed: bool) -> list[keras.callbacks.Callback]:
    """The system metrics monitor, unless tracking is off or ``tracking.system_metrics_interval`` is null."""
    return [SystemMetrics(run, interval, resumed)] if run.enabled and interval else []


class BestEpoch(keras.callbacks.Callback):
    """``trainer.restore_best``: keeps the weights of the epoch with the lowest ``val_loss`` in ``folder``, for
    :meth:`restore` once training ends.

    Listed before :class:`EpochCheckpoint`, each new best is written (under a temporary name, then renamed) before
    its epoch's checkpoint, and the previous best is kept until the next one: whenever a run is killed, the
    latest best file of a checkpointed epoch is the best of the epochs a resumed run does not repeat.
    """

    def __init__(self, folder: Path, history: Optional[dict[str, list[float]]] = None):
        super().__init__()
        self.folder = folder
        val_loss = (history or {}).get("val_loss", [])
        saved = self._saved()
        for epoch, path in saved:
            if epoch >= len(val_loss):  # written by an epoch that died before its checkpoint: it runs again
                path.unlink()
        kept = [epoch for epoch, _ in saved if epoch < len(val_loss)]
        self.best_epoch: Optional[int] = kept[-1] if kept else None
        self.best = val_loss[kept[-1]] if kept else float("inf")

    def _file(self, epoch: int) -> Path:
        return self.folder / f"best-epoch-{epoch:04d}.weights.h5"

    def _saved(self) -> list[tuple[int, Path]]:
        return sorted((int(p.name.split("-")[2].split(".")[0]), p) for p in self.folder.glob("best-epoch-*.weights.h5"))

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        value = (logs or {}).get("val_loss")
        if value is None or not value < self.best:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / ".partial.weights.h5"
        self.model.save_weights(partial)
        partial.replace(self._file(epoch))
        for older, path in self._saved():
            if self.best_epoch is not None and older < self.best_epoch:
                path.unlink()
        self.best, self.best_epoch = float(value), epoch

    def restore(self) -> Optional[int]:
        """Load the best epoch's weights into the model; returns that epoch (0-based), None if none was seen."""
        if self.best_epoch is None:
            return None
        self.model.load_weights(self._file(self.best_epoch))
        return self.best_epoch
