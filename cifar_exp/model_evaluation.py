"""``cifar-exp evaluate <model> [data overrides]``: a trained model's test metrics, confusion matrices and
per-class report on any dataset the loader reads, recorded as an evaluation run linked to the model (its
"Logged models" input; its metrics appear on the model's page beside the dataset)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from cifar_exp.errors import ConfigError, ModelError
from cifar_exp.identity import FINGERPRINT_TAG

log = logging.getLogger(__name__)

ALLOWED = ("data=", "data.", "tracking=", "tracking.")  # what an evaluation depends on; the rest is training
TAG_EVALUATED = "evaluated_model"


@dataclass
class EvaluationOutcome:
    """What ``cifar-exp evaluate`` measured, of which model, and the run that records it (None: tracking off)."""

    metrics: dict[str, float]
    run_id: Optional[str]
    source: str


def compose(overrides: Sequence[str]) -> DictConfig:
    """The project's config with ``overrides`` (data and tracking keys only), validated."""
    from cifar_exp import preflight
    from cifar_exp.validation import validate

    _check_overrides(overrides)
    try:
        cfg = preflight.compose(overrides)
    except ConfigError as error:
        raise ConfigError(f"{' '.join(overrides)}: {error}") from error
    validate(cfg)
    return cfg


def _check_overrides(overrides: Sequence[str]) -> None:
    """Only the dataset and the store may be set: a training key is refused as such, a typo as unknown."""
    from dataclasses import fields

    from cifar_exp.config import Config

    training = {f.name for f in fields(Config)} - {"data", "tracking"}
    foreign = [o for o in overrides if not o.startswith(ALLOWED)]
    unknown = [o for o in foreign if o.lstrip("+~").split("=", 1)[0].split(".", 1)[0] not in training]
    problems = []
    if unknown:
        problems.append(f"{', '.join(unknown)}: no such option")
    if len(unknown) < len(foreign):
        problems.append(
            f"{', '.join(o for o in foreign if o not in unknown)} would change a training, not an evaluation"
        )
    if problems:
        raise ConfigError(
            f"cifar-exp evaluate takes data.* and tracking.* overrides (the dataset and the store, e.g. data=local "
            f"data.path=... tracking.uri=...); {'; '.join(problems)}."
        )


def evaluation_name(source: str) -> str:
    """The evaluation run's name: ``evaluate-`` and the model's URI or file name, e.g. ``evaluate-cifar_exp@best``."""
    short = source.removeprefix("models:/").removeprefix("runs:/").rsplit("/", 1)[-1] if "/" in source else source
    return f"evaluate-{short}"


def evaluate_model(reference: str, overrides: Sequence[str]) -> EvaluationOutcome:
    """Evaluate the model ``reference`` (see :mod:`cifar_exp.model_ref`) on the test split of the configured data."""
    from cifar_exp import evaluate, evaluation_files, model_ref, tracking
    from cifar_exp.data import load_dataset

    cfg = compose(overrides)
    uri = cfg.tracking.uri if cfg.tracking.enabled else None
    if uri:
        tracking.prepare_store(uri)
        tracking.retire_dead_runs(tracking.client_for(uri))  # an evaluation killed earlier is not left RUNNING
    loaded = model_ref.load(reference, cfg.tracking.uri)
    data = load_dataset(**cfg.data)
    trained_on = loaded.labels.label_mode
    if loaded.model.output_shape[-1] != data.num_classes:
        raise ModelError(
            f"{loaded.source} predicts {loaded.model.output_shape[-1]} classes ({trained_on} labels), "
            f"the data has {data.num_classes} ({data.label_mode} labels): "
            f"set data.label_mode={trained_on}."
        )
    probabilities = loaded.probabilities(data.x_test)
    result = evaluate.evaluate(
        probabilities, data.y_test, data.class_names, data.coarse_names, data.fine_to_coarse, data.label_mode
    )
    source = tracking.data_source(cfg.data.source, cfg.data.path)
    test_set = tracking.dataset_inputs({"test": (data.x_test, data.y_test)}, source, data.label_mode)["test"]
    name = cfg.tracking.run_name or evaluation_name(loaded.source)
    tags = {
        tracking.TAG_ROLE: "evaluation",
        TAG_EVALUATED: loaded.source,
        FINGERPRINT_TAG: data.fingerprint,
        **tracking.environment_tags(),
    }
    with tracking.tracked_run(uri, cfg.tracking.experiment, name, tags=tags) as run:
        data_params = tracking.flatten({"data": OmegaConf.to_container(cfg.data, resolve=True)})
        tta = loaded.labels.tta_flip
        run.log_params({"model": loaded.source, **data_params, "data.test_images": len(data.y_test), "tta_flip": tta})
        tracking.log_dataset_inputs(run, {"test": test_set})
        if run.enabled and loaded.model_id:
            from mlflow.entities import LoggedModelInput

            run.client.log_inputs(run.run_id, models=[LoggedModelInput(loaded.model_id)])
        tracking.log_linked_metrics(run, result.metrics, 0, loaded.model_id, test_set)
        run.set_tags(
            {
                tracking.TAG_NOTE: f"**{loaded.source}** on the test split of {source} ({len(data.y_test)} "
                f"images): {evaluate.accuracy_summary(result.metrics)}."
            }
        )
        names = (data.class_names, data.coarse_names)
        tracking.log_figures_and_tables(
            run, evaluation_files.figures(name, result, *names), evaluation_files.tables(result, *names)
        )
    return EvaluationOutcome(result.metrics, run.run_id, loaded.source)
