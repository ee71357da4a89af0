"""What the 2017 report says of each experiment: its length and figures (``report_figures`` of the experiment
YAML, each figure's one home) and the per-epoch lines it printed (shipped in ``cifar_exp/report_figures/``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, cast

import pandas as pd
from mlflow.entities import Run as MlflowRun
from omegaconf import OmegaConf

from cifar_exp.config import CONF_DIR
from cifar_exp.identity import matching_figure
from cifar_exp.plots import Curve

EXPERIMENTS_DIR = CONF_DIR / "experiment"
PRINTED_EPOCHS = Path(__file__).resolve().parent / "report_figures" / "printed_epochs.csv"
REPORT_ORDER = ("learning_rate", "dropout", "decay", "sgd", "augmentation", "winning")  # as the report runs them


@dataclass
class ExperimentSpec:
    """What ``experiments/<name>.yaml`` says of the report: its length and its figures (None: no such file)."""

    name: str
    full_epochs: Optional[int] = None
    figures: Optional[list[dict[str, Any]]] = field(default=None)


def experiment_spec(name: str, folder: Path = EXPERIMENTS_DIR) -> ExperimentSpec:
    """What ``<folder>/<name>.yaml`` says of report experiment ``name``: its full length and its figures."""
    path = folder / f"{name}.yaml"
    if not path.exists():
        return ExperimentSpec(name)
    cfg = OmegaConf.load(path)
    figures = cast(list, OmegaConf.to_container(OmegaConf.select(cfg, "report_figures") or OmegaConf.create([])))
    return ExperimentSpec(name, OmegaConf.select(cfg, "trainer.epochs"), figures)


def _same(param: Optional[str], wanted: Any) -> bool:
    """A logged param (always a string) against a YAML value (number, bool or string)."""
    if param is None:
        return False
    if isinstance(wanted, bool):
        return param.lower() == str(wanted).lower()
    if isinstance(wanted, (int, float)):
        try:
            return math.isclose(float(param), float(wanted), rel_tol=1e-9)
        except ValueError:
            return False
    return param == str(wanted)


def report_figure(spec: ExperimentSpec, run: MlflowRun) -> dict[str, Any]:
    """The report's test accuracy, test loss and words for a run: the first of the experiment's figures whose
    ``when`` matches the run's params; for an experiment without a YAML, the tags the run was given."""
    label_mode = run.data.params.get("data.label_mode", "fine")
    if label_mode != "fine":
        return {"test_accuracy": None, "test_loss": None, "note": "20 superclasses: not comparable with the report"}
    if spec.figures is None:
        tags = run.data.tags
        accuracy = float(tags["report_test_accuracy"]) if "report_test_accuracy" in tags else None
        return {"test_accuracy": accuracy, "test_loss": None, "note": tags.get("report_note", "")}
    figure = matching_figure(spec.figures, label_mode, lambda key, value: _same(run.data.params.get(key), value))
    if figure is None:
        return {"test_accuracy": None, "test_loss": None, "note": ""}
    return {
        "test_accuracy": figure.get("test_accuracy"),
        "test_loss": figure.get("test_loss"),
        "note": figure.get("note", ""),
    }


def printed_epochs(experiment_name: str, path: Path = PRINTED_EPOCHS) -> dict[str, Curve]:
    """The report's printed (epoch, value) points of ``val_accuracy`` and ``val_loss`` for one experiment."""
    lines = pd.read_csv(path)
    lines = lines[lines["experiment"] == experiment_name]
    return {
        metric: (list(lines.loc[lines[metric].notna(), "epoch"]), list(lines[metric].dropna()))
        for metric in ("val_accuracy", "val_loss")
    }
