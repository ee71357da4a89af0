"""The trainer: one composed config in, one tracked Keras run out.

Order matters for the "nothing lost, nothing half-written" promise: the store and the dataset are
checked before the MLflow run is created, and once it exists, :func:`cifar_exp.tracking.tracked_run`
owns its end status.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import keras
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from cifar_exp import augment, checkpoint, evaluate, models, optim, plots, resume, tracking
from cifar_exp.config import config_hash, report_figure_for
from cifar_exp.data import Dataset, load_dataset
from cifar_exp.pipeline import Batches

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite (TerminateOnNaN stopped the run)."""


@dataclass
class JobContext:
    """What the launcher knows about this job and the config does not: overrides, sweep membership."""

    overrides: list[str] = field(default_factory=list)
    sweep_dir: Optional[str] = None  # set for the jobs of a multirun


@dataclass
class Outcome:
    """What a finished run measured: test metrics and the per-epoch logs of all its epochs."""

    metrics: dict[str, float]
    history: dict[str, list[float]]
    run_id: Optional[str] = None
    skipped: bool = False  # the configuration had already FINISHED in this store


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


class MetricsLogger(keras.callbacks.Callback):
    """Logs every epoch's logs to MLflow, step = epoch number (0-based), synchronously.

    Written here rather than using ``mlflow.keras.MlflowCallback``, which also logs un-stepped
    ``validation_*`` metrics at every validation pass and logs asynchronously.
    """

    def __init__(self, run: tracking.Run):
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.run.log_metrics({k: float(v) for k, v in (logs or {}).items()}, step=epoch)


def format_lr(lr: float) -> str:
    """1e-4 -> '1e-4', 0.0005 -> '5e-4', 0.01 -> '1e-2'."""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def run_name(cfg: DictConfig) -> str:
    """A name that says what varies, e.g. ``adam-lr1e-4-winning-shift_flip-s0``."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    parts = [cfg.optimizer.name, f"lr{format_lr(cfg.optimizer.lr)}"]
    if cfg.optimizer.decay:
        parts.append(f"decay{cfg.optimizer.decay:g}")
    parts += [cfg.dropout.name, cfg.augmentation.name, f"s{cfg.seed}"]
    return "-".join(parts)


def _load(cfg: DictConfig) -> Dataset:
    d = cfg.data
    return load_dataset(d.source, d.path, d.label_mode, d.val_split, d.split_seed, d.train_size, d.test_size)


def _augmentation(cfg: DictConfig):
    if cfg.augmentation.name == "none":
        return None
    shift, flip, transform = cfg.augmentation.shift, cfg.augmentation.flip, augment.AUGMENTATIONS[cfg.augmentation.name]
    return lambda images, rng: transform(images, rng, shift=shift, flip=flip)


def build_model(cfg: DictConfig, num_classes: int) -> keras.Model:
    """The configured model, compiled with the configured optimizer."""
    model = models.build(cfg.model.name, num_classes, (cfg.dropout.conv2, cfg.dropout.conv3, cfg.dropout.dense))
    o = cfg.optimizer
    model.compile(optimizer=optim.make_optimizer(o.name, o.lr, o.decay, o.momentum, o.nesterov),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=cfg.trainer.steps_per_execution)
    return model


def _tensorboard(log_dir: Path) -> list[keras.callbacks.Callback]:
    """TensorBoard logging needs TensorFlow's summary writer: present under the TF backend only."""
    if keras.backend.backend() != "tensorflow":
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=0, write_graph=False)]


def _determinism(cfg: DictConfig) -> None:
    """Seed everything; with ``trainer.deterministic`` also make TensorFlow's kernels deterministic."""
    keras.utils.set_random_seed(cfg.seed)
    if cfg.trainer.deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _log_missing_epochs(run: tracking.Run, history: dict[str, list[float]]) -> None:
    """After a resume, log the checkpointed epochs that MLflow lacks (killed between checkpoint and log)."""
    logged = {m.step for m in run.client.get_metric_history(run.run_id, "loss")}
    for epoch in range(len(history.get("loss", []))):
        if epoch not in logged:
            run.log_metrics({k: v[epoch] for k, v in history.items() if epoch < len(v)}, step=epoch)


def train(cfg: DictConfig, context: Optional[JobContext] = None) -> Outcome:
    """Train, evaluate and record one run of ``cfg``; returns its test metrics and history."""
    context = context or JobContext()
    uri = cfg.tracking.uri if cfg.tracking.enabled else None
    if uri is not None:
        tracking.prepare_store(uri)
    chash = config_hash(cfg)
    start = resume.plan(cfg.resume, cfg.force, context.sweep_dir is not None, uri, cfg.tracking.experiment, chash,
                        cfg.trainer.checkpoint_dir)
    if start.finished_run is not None:
        done = start.finished_run
        log.info("skipping %s: this configuration already FINISHED as run %s (force=true reruns it)",
                 run_name(cfg), done.info.run_id)
        return Outcome(dict(done.data.metrics), {}, done.info.run_id, skipped=True)
    data = _load(cfg)
    parent = tracking.find_sweep_parent(uri, cfg.tracking.experiment, context.sweep_dir) \
        if uri and context.sweep_dir and not start.resume_run_id else None

    _determinism(cfg)
    model = build_model(cfg, data.num_classes)
    epochs_done = 0
    if start.checkpoint is not None:
        checkpoint.restore(model, start.checkpoint)
        epochs_done = start.checkpoint.epochs_done
    with tracking.tracked_run(uri, cfg.tracking.experiment, run_name(cfg), parent, _run_tags(cfg, data, chash),
                              resume_run_id=start.resume_run_id) as run, \
            tempfile.TemporaryDirectory(prefix="cifar_exp_") as scratch:
        work = Path(scratch)
        folder = resume.checkpoint_folder(cfg.trainer.checkpoint_dir, run.run_id) if run.enabled else work
        if start.checkpoint is None:
            _log_run_description(run, cfg, context, data, model)
        else:
            _log_missing_epochs(run, start.checkpoint.history)
            run.set_tags({"resumed_at_epoch": epochs_done})
            log.info("resuming run %s at epoch %d of %d", run.run_id, epochs_done + 1, cfg.trainer.epochs)

        batches = Batches(data.x_train, data.y_train, cfg.trainer.batch_size, cfg.seed, _augmentation(cfg),
                          epoch=epochs_done)
        recorder = checkpoint.EpochCheckpoint(folder, start.checkpoint.history if start.checkpoint else None)
        callbacks = [EpochStats(len(data.y_train)), keras.callbacks.TerminateOnNaN(),
                     *([TimeBudget(60 * cfg.trainer.max_minutes)] if cfg.trainer.max_minutes else []),
                     *([TestEachEpoch(data.x_test, data.y_test)] if cfg.trainer.test_each_epoch else []),
                     *([recorder] if run.enabled else []), MetricsLogger(run), *_tensorboard(folder / "tensorboard")]
        fitted = model.fit(batches, validation_data=(data.x_val, data.y_val), validation_batch_size=256,
                           epochs=cfg.trainer.epochs, initial_epoch=epochs_done, callbacks=callbacks,
                           shuffle=False,  # Batches shuffles, reproducibly; Keras would reorder with global state
                           verbose=cfg.trainer.verbose).history
        history = recorder.history if run.enabled else fitted
        if any(not math.isfinite(v) for v in history.get("loss", [])):
            raise TrainingDiverged(f"the training loss became {history['loss'][-1]} at epoch {len(history['loss'])}; "
                                   "lower optimizer.lr or check the data.")
        epochs_run = len(history["loss"])
        if epochs_run < cfg.trainer.epochs:  # only the time budget ends a run early without raising
            log.info("trainer.max_minutes=%g reached: stopped after epoch %d of %d",
                     cfg.trainer.max_minutes, epochs_run, cfg.trainer.epochs)
            run.set_tags({"stopped_early": f"trainer.max_minutes={cfg.trainer.max_minutes:g}: "
                                           f"{epochs_run} of {cfg.trainer.epochs} epochs"})

        probabilities = model.predict(data.x_test, batch_size=256, verbose=0)
        result = evaluate.evaluate(probabilities, data.y_test, data.class_names, data.coarse_names,
                                   data.fine_to_coarse, data.label_mode)
        run.log_metrics({**result.metrics, "epochs_run": epochs_run}, step=epochs_run)
        run.set_tags({tracking.TAG_NOTE: _summary_note(cfg, result.metrics, epochs_run)})
        _log_artifacts(run, cfg, model, data, result, history, work, folder / "tensorboard")
    if run.enabled:
        checkpoint.remove(folder)
    return Outcome(result.metrics, history, run.run_id)


def _summary_note(cfg: DictConfig, metrics: dict[str, float], epochs_run: int) -> str:
    """The run's description in the MLflow UI: what it measured, beside what the report measured."""
    top5 = f" (top-5 {metrics['test_top5_accuracy']:.2%})" if "test_top5_accuracy" in metrics else ""
    note = (f"**{run_name(cfg)}**: test accuracy {metrics['test_accuracy']:.2%}{top5} "
            f"after {epochs_run} of {cfg.trainer.epochs} epochs.")
    figure = report_figure_for(cfg)
    if figure is not None:
        note += f" The 2017 report: {figure.note}."
    return note


def _run_tags(cfg: DictConfig, data: Dataset, chash: str) -> dict[str, str]:
    """What makes the run reproducible and comparable: data and config fingerprints, versions, the
    report's figure for this setting."""
    tags = {"dataset_fingerprint": data.fingerprint, "config_hash": chash, **tracking.environment_tags()}
    if cfg.experiment:
        tags["experiment"] = cfg.experiment
    figure = report_figure_for(cfg)
    if figure is not None:
        tags["report_note"] = figure.note
        if figure.test_accuracy is not None:
            tags["report_test_accuracy"] = str(figure.test_accuracy)
    return tags


def _log_run_description(run: tracking.Run, cfg: DictConfig, context: JobContext, data: Dataset,
                         model: keras.Model) -> None:
    """Params, the resolved config, the overrides and the model summary: logged once, when a run starts."""
    params = tracking.flatten(OmegaConf.to_container(cfg, resolve=True))
    params.update({"overrides": " ".join(context.overrides) or "(none)", "data.train_images": len(data.y_train),
                   "data.val_images": len(data.y_val), "data.test_images": len(data.y_test)})
    run.log_params(params)
    run.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
    run.log_text(OmegaConf.to_yaml(OmegaConf.create(context.overrides)), "config/overrides.yaml")
    summary: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: summary.append(line))
    run.log_text("\n".join(summary), "model_summary.txt")


def _log_artifacts(run: tracking.Run, cfg: DictConfig, model: keras.Model, data: Dataset,
                   result: evaluate.Evaluation, history: dict[str, list[float]], work: Path,
                   tensorboard_dir: Path) -> None:
    if not run.enabled:
        return
    name = run_name(cfg)
    figures = {
        "plots/confusion_matrix.png": plots.confusion_matrix(result.confusion, data.class_names,
                                                             f"{name}: confusion matrix (test)"),
        "plots/confusion_matrix_grayscale.png": plots.confusion_matrix(
            result.confusion, data.class_names, f"{name}: confusion matrix (test)", cmap="Greys"),
        "plots/superclass_confusion_matrix.png": plots.confusion_matrix(
            result.superclass_confusion, data.coarse_names, f"{name}: superclass confusion matrix (test)"),
        "plots/learning_curves.png": plots.learning_curves(history, name),
    }
    for artifact_file, figure in figures.items():
        run.log_figure(figure, artifact_file)
        plots.close(figure)
    _log_matrix(run, result.confusion, data.class_names, "metrics/confusion_matrix.csv")
    _log_matrix(run, result.superclass_confusion, data.coarse_names, "metrics/superclass_confusion_matrix.csv")
    run.log_text(result.per_class.to_csv(float_format="%.4f"), "metrics/per_class_report.csv")
    model_path = work / "model.h5"
    model.save(model_path)
    run.log_artifact(model_path, "model")
    if tensorboard_dir.exists():
        run.log_artifacts(tensorboard_dir, "tensorboard")


def _log_matrix(run: tracking.Run, counts: np.ndarray, labels: list[str], artifact_file: str) -> None:
    frame = pd.DataFrame(counts, index=pd.Index(labels, name="true"), columns=labels)
    run.log_text(frame.to_csv(), artifact_file)

