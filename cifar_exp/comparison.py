"""One experiment's comparison table: runs grouped by configuration and length, seeds pooled, each group's
mean test accuracy with its interval beside the report's figure, the verdict and what falls short."""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd
from mlflow.entities import Run as MlflowRun
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from cifar_exp.errors import ReportError
from cifar_exp.identity import FINGERPRINT_TAG, is_bookkeeping
from cifar_exp.reported import experiment_spec, report_figure
from cifar_exp.tracking.run import has_result
from cifar_exp.verdicts import CONFIDENCE, shortfall, t_interval, verdict

MAX_NOTE = MAX_TAG_VAL_LENGTH  # MLflow's limit on a tag value (the run description is a tag)
# Not what a sweep compares: seeds are pooled, epochs have their own column, the rest is bookkeeping (the data
# itself is identified by the dataset_fingerprint tag, not by where it was read from: runs on data of another
# fingerprint form rows of their own; a time budget shows as the epochs a run got through).
COMPARED_ELSEWHERE = {
    "seed",
    "experiment",  # one run can be an arm of two experiments (their shared configuration)
    "overrides",
    "trainer.epochs",
    "trainer.max_minutes",
    "data.path",
    "data.train_images",
    "data.val_images",
    "data.test_images",
}
METHOD = (
    f"Test accuracy: mean over seeds with its {CONFIDENCE:.0%} Student-t interval (scipy.stats.t, n-1 degrees "
    "of freedom). Verdict: **reproduced** when the report's figure lies inside the interval, else **higher** "
    "or **lower** by the mean minus the report's figure, in percentage points; **no figure** where the report "
    "gives none; **1 seed: no interval**. Groups with fewer than 3 seeds or fewer epochs than the report ran "
    "are flagged, not extrapolated."
)


POOLED = COMPARED_ELSEWHERE - {"trainer.epochs"}  # what may differ between the seeds of one arm


def arm_key(run: MlflowRun) -> tuple[tuple[tuple[str, str], ...], str]:
    """What makes runs seeds of one arm, whichever experiment filed them: every param but the seed and bookkeeping,
    and the data's fingerprint."""
    params = tuple(sorted((k, v) for k, v in run.data.params.items() if k not in POOLED and not is_bookkeeping(k)))
    return params, run.data.tags.get(FINGERPRINT_TAG, "")


def varying_params(runs: list[MlflowRun]) -> list[str]:
    """The params whose values differ between runs (seeds excluded): what the sweep compares. Only keys
    every run has count, so runs logged before a config key was added still compare."""
    keys = sorted(
        k for k in set.intersection(*(set(r.data.params) for r in runs)) - COMPARED_ELSEWHERE if not is_bookkeeping(k)
    )
    return [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]


def _label(run: MlflowRun, varying: list[str]) -> str:
    if varying:
        return ", ".join(f"{k}={run.data.params[k]}" for k in varying)
    return re.sub(r"-s\d+$", "", run.info.run_name or "")  # one configuration: its run name, seeds pooled


def comparison_table(
    runs: list[MlflowRun], experiment_name: Optional[str] = None, epoch_seconds: Optional[Mapping[str, float]] = None
) -> pd.DataFrame:
    """One row per configuration and length: test accuracy (mean, std, interval over seeds) and loss beside
    the report's figures, the verdict and what falls short of the report's protocol. ``epoch_seconds``: each
    run's typical (median) epoch time by run id; without it, each run's last epoch's, which one slow epoch
    (a paused machine) can make unrepresentative."""
    epoch_seconds = epoch_seconds or {}
    finished = [r for r in runs if has_result(r)]
    if not finished:
        raise ReportError("the sweep has no finished run with a test accuracy yet")
    name = experiment_name or finished[0].data.tags.get("experiment", "")
    spec = experiment_spec(name)
    varying = varying_params(finished)
    frame = pd.DataFrame(
        [
            {
                "configuration": _label(r, varying),
                "data": r.data.tags.get(FINGERPRINT_TAG, "")[:12],
                "epochs": int(r.data.params.get("trainer.epochs", 0)),
                "seed": r.data.params.get("seed"),
                # Runs stopped by trainer.max_minutes ran fewer epochs than configured (older runs: all of them).
                "epochs_run": int(r.data.metrics.get("epochs_run", r.data.params.get("trainer.epochs", 0))),
                "test_accuracy": r.data.metrics["test_accuracy"],
                "test_loss": r.data.metrics.get("test_loss", math.nan),
                "val_accuracy": r.data.metrics.get("val_accuracy", math.nan),
                "epoch_seconds": epoch_seconds.get(r.info.run_id, r.data.metrics.get("epoch_seconds", math.nan)),
                **{f"report_{key}": value for key, value in report_figure(spec, r).items()},
            }
            for r in finished
        ]
    )
    if frame["data"].nunique() > 1:  # runs on other data (another copy, other files) are another arm, never pooled
        frame["configuration"] = frame["configuration"] + " (data " + frame["data"] + ")"
    # One run per seed: where a seed ran more than once (a re-run under another time budget), the longest counts.
    frame = frame.loc[
        frame.groupby(["configuration", "epochs", "seed"], sort=False)["epochs_run"].idxmax()
    ].sort_index()
    rows = []
    for (configuration, epochs), group in frame.groupby(["configuration", "epochs"], sort=False):
        mean, low, high = t_interval(group["test_accuracy"])
        low, high = (float(np.clip(bound, 0.0, 1.0)) for bound in (low, high))  # an accuracy's range (NaN stays)
        figure = None if _blank(group["report_test_accuracy"].iloc[0]) else float(group["report_test_accuracy"].iloc[0])
        full = spec.full_epochs or epochs
        ran_min, ran_max = int(group["epochs_run"].min()), int(group["epochs_run"].max())
        rows.append(
            {
                "experiment": name,
                "configuration": configuration,
                "epochs": epochs,
                "runs": len(group),
                "seeds": group["seed"].nunique(),
                "epochs_run_min": ran_min,
                "epochs_run_max": ran_max,
                "full_epochs": full,
                "test_accuracy_mean": mean,
                "test_accuracy_std": group["test_accuracy"].std() if len(group) > 1 else math.nan,
                "ci_low": low,
                "ci_high": high,
                "report_test_accuracy": figure,
                "difference_pts": math.nan if figure is None else 100 * (mean - figure),
                "verdict": verdict(mean, low, high, figure),
                "test_loss_mean": group["test_loss"].mean(),
                "report_test_loss": group["report_test_loss"].iloc[0],
                "final_val_accuracy": group["val_accuracy"].mean(),
                "seconds_per_epoch": group["epoch_seconds"].mean(),
                "report_note": group["report_note"].iloc[0],
                "short_of_protocol": shortfall(group["seed"].nunique(), ran_min, ran_max, full),
            }
        )
    return pd.DataFrame(rows)


# Tables, tags and figures


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def to_markdown(table: pd.DataFrame, title: str, with_experiment: bool = False) -> str:
    """The table as GitHub markdown (percentages), written by hand to avoid a tabulate dependency."""

    def pct(value: Any) -> str:
        return "" if _blank(value) else f"{100 * value:.2f}%"

    def num(value: Any, digits: int) -> str:
        return "" if _blank(value) else f"{value:.{digits}f}"

    head = [
        "configuration",
        "epochs run",
        "runs",
        "test accuracy",
        f"{CONFIDENCE:.0%} interval",
        "report",
        "verdict",
        "test loss",
        "report's loss",
        "report's words",
        "short of the report's protocol",
        "s/epoch",
    ]
    head = ["experiment", *head] if with_experiment else head
    align = [
        "---"
        if h in ("experiment", "configuration", "verdict", "report's words", "short of the report's protocol")
        else "---:"
        for h in head
    ]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for row in table.to_dict("records"):
        ran = (
            f"{row['epochs_run_min']}"
            if row["epochs_run_min"] == row["epochs_run_max"]
            else f"{row['epochs_run_min']}-{row['epochs_run_max']}"
        )
        epochs = str(row["epochs"]) if ran == str(row["epochs"]) else f"{ran} of {row['epochs']}"
        interval = "" if _blank(row.get("ci_low")) else f"{100 * row['ci_low']:.2f} to {100 * row['ci_high']:.2f}%"
        cells = [
            row["configuration"],
            epochs,
            str(row["runs"]),
            pct(row["test_accuracy_mean"]),
            interval,
            pct(row.get("report_test_accuracy")),
            row.get("verdict", ""),
            num(row.get("test_loss_mean"), 4),
            num(row.get("report_test_loss"), 4),
            row.get("report_note", ""),
            row.get("short_of_protocol", ""),
            num(row.get("seconds_per_epoch"), 0 if (row.get("seconds_per_epoch") or 0) >= 10 else 1),
        ]
        cells = [row["experiment"], *cells] if with_experiment else cells
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join([*lines, "", METHOD]) + "\n"


def verdict_tag(table: pd.DataFrame) -> str:
    """The verdicts of a table as one line: ``configuration: verdict [shortfall]; ...``."""
    repeated = table["configuration"].duplicated(keep=False)
    parts = []
    for row, twice in zip(table.to_dict("records"), repeated):
        label = f"{row['configuration']} ({row['epochs']} epochs)" if twice else row["configuration"]
        parts.append(
            f"{label}: {row['verdict']}" + (f" [{row['short_of_protocol']}]" if row["short_of_protocol"] else "")
        )
    return "; ".join(parts)[:MAX_NOTE]
