"""The model registry: a run's logged model registered under a name, with an alias (``@best``) that
``models:/<name>@best`` resolves wherever the store is reachable. A sweep registers its best run when it closes
(``tracking.register_as``); ``cifar-exp register <run id> --name ...`` registers any run."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Optional

from mlflow.entities import Run as MlflowRun
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

from cifar_exp.errors import ModelError, briefly
from cifar_exp.tracking.records import TAG_RECORD_OF
from cifar_exp.tracking.run import TAG_BEST_RUN, TAG_ROLE

ALIAS = "best"

log = logging.getLogger(__name__)


@dataclass
class Registration:
    """A model version and whether the alias now points at it."""

    name: str
    version: str
    run_id: str
    alias: Optional[str]  # set when the alias was moved to (or already pointed at) this version

    @property
    def uri(self) -> str:
        """The URI that loads it: by alias where it holds one, else by version."""
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"


def find_run(client: MlflowClient, run_id: str, advice: str = "") -> MlflowRun:
    """The run, or a ModelError saying the store holds no such run (``advice``: what to do about it)."""
    try:
        return client.get_run(run_id)
    except MlflowException as error:
        raise ModelError(
            f"run {run_id}: no such run in the store {client.tracking_uri} ({error.message.splitlines()[0]})"
            + (f"; {advice}." if advice else ".")
        ) from error


def trained_model_id(run: MlflowRun) -> Optional[str]:
    """The id of the MLflow Model the run logged (the one at its latest step), None if it logged none; a
    ModelError for a run that trains nothing (a sweep's parent names its best job)."""
    role = run.data.tags.get(TAG_ROLE)
    if role in ("sweep", "report", "evaluation"):
        best = run.data.tags.get(TAG_BEST_RUN)
        raise ModelError(
            f"run {run.info.run_id} ({run.info.run_name}) is {'an' if role[0] in 'aeiou' else 'a'} {role} run, "
            "which trains no model" + (f"; its best job is run {best}: use that id instead" if best else "") + "."
        )
    outputs = run.outputs.model_outputs if run.outputs else []
    return max(outputs, key=lambda output: output.step).model_id if outputs else None


def logged_model_id(client: MlflowClient, run_id: str) -> str:
    """The id of the MLflow Model a run logged (the one at its latest step)."""
    run = find_run(client, run_id)
    model_id = trained_model_id(run)
    if model_id is None:
        if run.info.status != "FINISHED":
            raise ModelError(
                f"run {run_id} ({run.info.run_name}) is {run.info.status}: it logged no model, which a run does "
                "once it has trained and been tested; continue it with the command in its 'command' tag and "
                "resume=auto, or register another run."
            )
        if TAG_RECORD_OF in run.data.tags:
            raise ModelError(
                f"run {run_id} ({run.info.run_name}) was imported from a record of run {run.data.tags[TAG_RECORD_OF]}, "
                "and records carry what a run measured, not its models: use the model in the store that trained it, "
                "or train the configuration here with force=true."
            )
        raise ModelError(
            f"run {run_id} ({run.info.run_name}) logged no MLflow Model: it ran before runs logged their models "
            "as MLflow Models; only its .h5 can be used (cifar-exp predict <run id>)."
        )
    return model_id


def _check_alias(alias: str) -> None:
    """MLflow's own rules for an alias, checked before anything is registered: ``latest`` and ``v<digits>``
    are reserved (they already mean a version)."""
    from mlflow.utils.validation import _validate_model_alias_name, _validate_model_alias_name_reserved

    try:
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
    except MlflowException as error:
        raise ModelError(f"--alias {alias}: {error.message} Choose another alias, e.g. best or candidate.") from error


def _accuracy(client: MlflowClient, run_id: str) -> Optional[float]:
    return client.get_run(run_id).data.metrics.get("test_accuracy")


def register_run(
    client: MlflowClient, run_id: str, name: str, alias: Optional[str] = ALIAS, only_if_better: bool = False
) -> Registration:
    """Register the run's logged model under ``name`` (one version per run: registering it again reuses it) and
    point ``alias`` at it; with ``only_if_better``, only if its ``test_accuracy`` is at least that of the version
    the alias points at now."""
    if alias:
        _check_alias(alias)
    model_id = logged_model_id(client, run_id)
    try:
        client.create_registered_model(
            name,
            description="CIFAR-100 classifiers trained by cifar_exp: uint8 RGB "
            "images (N, 32, 32, 3) in, class probabilities out.",
        )
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise ModelError(f"cannot register a model named {name!r}: {error.message}") from error
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    accuracy = _accuracy(client, run_id)
    if existing:
        version = max(existing, key=lambda v: int(v.version))
    else:
        tags = {"test_accuracy": f"{accuracy:.4f}"} if accuracy is not None else {}
        # The source is the model's storage location: MLflow 3.17's registry would resolve "models:/<model id>"
        # through the process-wide tracking URI, not this client's store.
        logged = client.get_logged_model(model_id)
        version = client.create_model_version(
            name, logged.artifact_location, run_id=run_id, tags=tags, model_id=model_id
        )
        # The UI lists a logged model's registered versions from this tag (as mlflow.register_model writes it).
        versions = json.loads(logged.tags.get(MLFLOW_MODEL_VERSIONS, "[]"))
        client.set_logged_model_tags(
            model_id, {MLFLOW_MODEL_VERSIONS: json.dumps([*versions, {"name": name, "version": version.version}])}
        )
    if alias and only_if_better:
        try:
            current = client.get_model_version_by_alias(name, alias)
        except MlflowException:
            current = None
        if current is not None and str(current.version) != str(version.version):
            held = _accuracy(client, current.run_id) if current.run_id else None
            if held is not None and (accuracy is None or accuracy < held):
                return Registration(name, str(version.version), run_id, None)
    if alias:
        client.set_registered_model_alias(name, alias, str(version.version))
    return Registration(name, str(version.version), run_id, alias)


def alias_run(client: MlflowClient, name: str, alias: str = ALIAS) -> Optional[str]:
    """The run whose version ``name@alias`` points at now; None where there is no such model, alias or run."""
    try:
        return client.get_model_version_by_alias(name, alias).run_id or None
    except MlflowException:
        return None


def register_best(client: MlflowClient, run_id: str, name: str, only_if_better: bool = True) -> str:
    """Register the sweep's best run under ``name``; the alias ``@best`` moves to it unless (``only_if_better``) the
    version it holds scored a higher test accuracy. Returns what happened, in words; a failure is logged and said,
    never raised (the sweep ran)."""
    try:
        registration = register_run(client, run_id, name, only_if_better=only_if_better)
    except (ModelError, MlflowException) as error:
        log.warning("could not register the sweep's best run %s as %r: %s", run_id, name, briefly(error))
        return f"not registered ({error})"
    if registration.alias:
        return f"models:/{name}@{registration.alias} (version {registration.version})"
    return f"models:/{name}/{registration.version} (@best stays on a version with a higher test accuracy)"
