"""The trainer, as a recipe: plan the job, data, model, callbacks, fit, evaluate, record.

Order matters for the "nothing lost, nothing half-written" promise: the store and the dataset are
checked before the MLflow run is created, and once it exists, :meth:`cifar_exp.tracking.Job.open`
owns its end status.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, cast

import keras
import numpy as np
from omegaconf import DictConfig, OmegaConf

from cifar_exp import augment, callbacks, checkpoint, evaluate, evaluation_files, models, optim, signals, tracking
from cifar_exp.data import Dataset, load_dataset
from cifar_exp.errors import TrainingDiverged
from cifar_exp.identity import CONFIG_HASH_TAG, FINGERPRINT_TAG, config_hash, report_figure_for, run_name
from cifar_exp.inference import predict
from cifar_exp.labels import Labels
from cifar_exp.losses import encode_labels, make_loss
from cifar_exp.pipeline import Batches
from cifar_exp.plan import JobContext, plan_job
from cifar_exp.schedules import make_schedule
from cifar_exp.search import open_trial

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a run measured: test metrics and the per-epoch logs of all its epochs (empty if skipped)."""

    metrics: dict[str, float]
    history: dict[str, list[float]]
    run_id: Optional[str] = None


def train(
    cfg: DictConfig,
    context: Optional[JobContext] = None,
    data: Optional[Dataset] = None,
    job: Optional[tracking.Job] = None,
) -> Outcome:
    """Train, evaluate and record one run of ``cfg``; returns its test metrics and history. ``data`` and ``job``:
    ``cfg.data`` already loaded and the job already planned on it (the command line does both before TensorFlow
    loads, so a bad dataset or a refused resume is said at once); without them, done here."""
    context = context or JobContext()
    name = run_name(cfg)
    if job is None:
        data = data or load_dataset(**cfg.data)
        job = plan_job(cfg, context, data.fingerprint)
    if job.finished_run is not None:
        done = job.finished_run
        log.info(
            "skipping %s: this configuration already FINISHED as run %s (force=true reruns it)", name, done.info.run_id
        )
        job.note_skipped()
        return Outcome(dict(done.data.metrics), {}, done.info.run_id)

    try:
        data = data or load_dataset(**cfg.data)
        job.check_same_data(data.fingerprint, f"data.source={cfg.data.source} data.path={cfg.data.path}")
    except BaseException:
        job.release()
        raise
    inputs = tracking.dataset_inputs(
        {
            "train": (data.x_train, data.y_train),
            "validation": (data.x_val, data.y_val),
            "test": (data.x_test, data.y_test),
        },
        tracking.data_source(cfg.data.source, cfg.data.path),
        data.label_mode,
    )
    _seed(cfg)
    steps = math.ceil(len(data.y_train) / cfg.trainer.batch_size) * cfg.trainer.epochs
    model = build_model(cfg, data.num_classes, steps)
    trial = open_trial(cfg.search.study, cfg.search.storage, cfg.search.trial) if cfg.search.trial is not None else None
    if job.checkpoint is not None:
        checkpoint.restore(model, job.checkpoint)

    tags = _run_tags(cfg, data)
    if job.resume_run_id is not None:  # a shared arm stays filed under the experiment that started it
        tags.pop("experiment", None)
    if context.job_num is not None:
        tags[tracking.TAG_JOB_NUM] = str(context.job_num)
    with job.open(tags) as (run, folder):
        _record_start(run, cfg, context, data, model, job, inputs)
        labels = functools.partial(encode_labels, cfg.loss, num_classes=data.num_classes)
        recorder = callbacks.EpochCheckpoint(folder, job.checkpoint.history if job.checkpoint else None)
        best = callbacks.BestEpoch(folder, recorder.history) if cfg.trainer.restore_best else None
        study = callbacks.ReportToStudy(*trial, folder) if trial else None
        fit_callbacks = _fit_callbacks(
            cfg, run, data, labels, job.checkpoint is not None, recorder, best, study, folder
        )
        batches = Batches(
            data.x_train,
            labels(data.y_train),
            cfg.trainer.batch_size,
            cfg.seed,
            augment.make_augmentation(cfg.augmentation),
            epoch=job.epochs_done,
        )
        model.fit(
            batches,
            validation_data=(data.x_val, labels(data.y_val)),
            validation_batch_size=256,
            epochs=cfg.trainer.epochs,
            initial_epoch=job.epochs_done,
            callbacks=fit_callbacks,
            shuffle=False,  # Batches shuffles, reproducibly; Keras would reorder with global state
            verbose=cfg.trainer.verbose,
        )
        history = recorder.history
        epochs_run = _check_history(run, cfg, history, study.pruned_at if study else None)
        restored = _restore_best(run, best, history)

        probabilities = predict(model, data.x_test, cfg.trainer.tta_flip)
        result = evaluate.evaluate(
            probabilities, data.y_test, data.class_names, data.coarse_names, data.fine_to_coarse, data.label_mode
        )
        tracking.record_results(
            run,
            {**result.metrics, "epochs_run": epochs_run},
            epochs_run,
            _summary_note(cfg, name, result.metrics, epochs_run, restored),
            evaluation_files.figures(name, result, data.class_names, data.coarse_names, history),
            evaluation_files.tables(result, data.class_names, data.coarse_names),
            model,
            folder / "tensorboard",
            Labels.of_dataset(data, cfg.trainer.tta_flip),
            inputs["test"],
            skip_logged=job.checkpoint is not None,
        )
    if run.enabled and cfg.tracking.records:
        with signals.deferred():  # the run is FINISHED: its record is written whole before a stop is said
            tracking.keep_record(cfg.tracking.uri, run.run_id, cfg.tracking.records)
    return Outcome(result.metrics, history, run.run_id)


def _fit_callbacks(
    cfg: DictConfig,
    run: tracking.Run,
    data: Dataset,
    labels: Callable[[np.ndarray], np.ndarray],
    resumed: bool,
    recorder: callbacks.EpochCheckpoint,
    best: Optional[callbacks.BestEpoch],
    study: Optional[callbacks.ReportToStudy],
    folder: Path,
) -> list[keras.callbacks.Callback]:
    """What watches each epoch, in order: guards that stop a run going wrong, what adds to an epoch's logs (test
    accuracy, EMA weights), then the checkpoint and the loggers that record those logs."""
    return [
        callbacks.EpochStats(len(data.y_train)),
        keras.callbacks.TerminateOnNaN(),
        callbacks.StopWhenValidationDiverges(),
        *callbacks.system_metrics(run, cfg.tracking.system_metrics_interval, resumed=resumed),
        *([best] if best else []),
        *([callbacks.TimeBudget(60 * cfg.trainer.max_minutes)] if cfg.trainer.max_minutes else []),
        *([callbacks.TestEachEpoch(data.x_test, labels(data.y_test))] if cfg.trainer.test_each_epoch else []),
        *([keras.callbacks.SwapEMAWeights()] if cfg.optimizer.ema is not None else []),
        recorder,
        callbacks.MetricsLogger(run),
        *([study] if study else []),
        *callbacks.tensorboard(folder / "tensorboard"),
    ]


def _record_start(
    run: tracking.Run,
    cfg: DictConfig,
    context: JobContext,
    data: Dataset,
    model: keras.Model,
    job: tracking.Job,
    inputs: dict,
) -> None:
    """A new run records what it is and the data it trains on; a continued one fills in the epochs its last
    process trained but did not log, and says where it resumes."""
    if job.checkpoint is None:
        _describe(run, cfg, context, data, model)
        tracking.log_dataset_inputs(run, inputs)
        return
    _log_missing_epochs(run, job.checkpoint.history)
    run.set_tags({"resumed_at_epoch": job.epochs_done})
    if job.epochs_done < cfg.trainer.epochs:
        log.info("resuming run %s at epoch %d of %d", run.run_id, job.epochs_done + 1, cfg.trainer.epochs)
    else:
        log.info("resuming run %s: all %d epochs were trained; evaluating and recording", run.run_id, job.epochs_done)


def build_model(cfg: DictConfig, num_classes: int, total_steps: int) -> keras.Model:
    """The configured model in the configured precision, compiled with the configured optimizer, schedule (over
    ``total_steps`` optimizer steps) and loss."""
    with models.precision(cfg.trainer.precision):
        model = models.build(cfg.model.name, num_classes, (cfg.dropout.conv2, cfg.dropout.conv3, cfg.dropout.dense))
    rate = make_schedule(cfg.schedule, cfg.optimizer.lr, cfg.optimizer.decay, total_steps)
    model.compile(
        optimizer=optim.make_optimizer(cfg.optimizer, rate),
        loss=make_loss(cfg.loss),
        metrics=["accuracy"],
        steps_per_execution=cfg.trainer.steps_per_execution,
    )
    return model


def _seed(cfg: DictConfig) -> None:
    """Seed everything; with ``trainer.deterministic`` also make TensorFlow's kernels deterministic."""
    keras.utils.set_random_seed(cfg.seed)
    if cfg.trainer.deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _check_history(
    run: tracking.Run, cfg: DictConfig, history: dict[str, list[float]], pruned_at: Optional[int] = None
) -> int:
    """Epochs run; a NaN loss fails the run, a search's pruner or a time budget that stopped it early is said in a
    tag (``pruned``: the epochs run)."""
    for key, which in (("loss", "training"), ("val_loss", "validation")):
        if any(not math.isfinite(v) for v in history.get(key, [])):
            raise TrainingDiverged(
                f"the {which} loss became {history[key][-1]} at epoch {len(history[key])}; "
                "lower optimizer.lr or check the data."
            )
    epochs_run = len(history["loss"])
    if pruned_at is not None:
        log.info("pruned by the search after epoch %d of %d", epochs_run, cfg.trainer.epochs)
        run.set_tags({"pruned": str(epochs_run)})
    elif epochs_run < cfg.trainer.epochs:  # else only the time budget ends a run early without raising
        log.info(
            "trainer.max_minutes=%g reached: stopped after epoch %d of %d",
            cfg.trainer.max_minutes,
            epochs_run,
            cfg.trainer.epochs,
        )
        run.set_tags(
            {
                "stopped_early": f"trainer.max_minutes={cfg.trainer.max_minutes:g}: "
                f"{epochs_run} of {cfg.trainer.epochs} epochs"
            }
        )
    return epochs_run


def _log_missing_epochs(run: tracking.Run, history: dict[str, list[float]]) -> None:
    """After a resume, log the checkpointed epochs that MLflow lacks (killed between checkpoint and log)."""
    logged = run.logged_steps("loss")
    for epoch in range(len(history.get("loss", []))):
        if epoch not in logged:
            run.log_metrics({k: v[epoch] for k, v in history.items() if epoch < len(v)}, step=epoch)


def _run_tags(cfg: DictConfig, data: Dataset) -> dict[str, str]:
    """What makes the run reproducible and comparable: data and config fingerprints, versions, the
    report's figure for this setting."""
    tags = {FINGERPRINT_TAG: data.fingerprint, CONFIG_HASH_TAG: config_hash(cfg), **tracking.environment_tags()}
    if cfg.experiment:
        tags["experiment"] = cfg.experiment
    figure = report_figure_for(cfg)
    if figure is not None:
        tags["report_note"] = figure.note
        if figure.test_accuracy is not None:
            tags["report_test_accuracy"] = str(figure.test_accuracy)
    return tags


def _describe(run: tracking.Run, cfg: DictConfig, context: JobContext, data: Dataset, model: keras.Model) -> None:
    params = tracking.flatten(cast(dict, OmegaConf.to_container(cfg, resolve=True)))
    params.update(
        {
            "overrides": " ".join(context.overrides) or "(none)",
            "data.train_images": len(data.y_train),
            "data.val_images": len(data.y_val),
            "data.test_images": len(data.y_test),
            "model.parameters": model.count_params(),
            "model.forward_flops": models.forward_flops(model),
        }
    )
    summary: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: summary.append(line))
    tracking.describe_run(
        run,
        params,
        OmegaConf.to_yaml(cfg, resolve=True),
        OmegaConf.to_yaml(OmegaConf.create(context.overrides)),
        "\n".join(summary),
    )


def _summary_note(
    cfg: DictConfig, name: str, metrics: dict[str, float], epochs_run: int, restored: Optional[int] = None
) -> str:
    """The run's description in the MLflow UI: what it measured, beside what the report measured."""
    at = f" (the weights of epoch {restored + 1}, the lowest val_loss)" if restored is not None else ""
    note = f"**{name}**: {evaluate.accuracy_summary(metrics)} after {epochs_run} of {cfg.trainer.epochs} epochs{at}."
    figure = report_figure_for(cfg)
    if figure is not None:
        note += f" The 2017 report: {figure.note}."
    return note


def _restore_best(
    run: tracking.Run, best: Optional[callbacks.BestEpoch], history: dict[str, list[float]]
) -> Optional[int]:
    """With ``trainer.restore_best``, load the weights of the lowest-val_loss epoch (0-based; returned), say so."""
    epoch = best.restore() if best is not None else None
    if epoch is not None:
        log.info(
            "trainer.restore_best: evaluating the weights of epoch %d (val_loss %.4f)",
            epoch + 1,
            history["val_loss"][epoch],
        )
        run.set_tags(
            {
                "restored_best_epoch": f"epoch {epoch + 1} of {len(history['loss'])} (val_loss "
                f"{history['val_loss'][epoch]:.4f}; step {epoch} in the curves)"
            }
        )
    return epoch
