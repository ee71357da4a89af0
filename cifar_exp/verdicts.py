"""Verdicts on the report's claims: the mean of an arm over seeds with its Student-t interval, and where the
report's figure falls against it. Pure functions of numbers (scipy does the statistics)."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
FULL_SEEDS = 3  # fewer seeds than this is flagged as short of the protocol


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """The mean of ``values`` and the two-sided Student-t interval of that mean; NaN bounds for fewer than two."""
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if len(data) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + confidence) / 2, df=len(data) - 1) * stats.sem(data))
    return mean, mean - half, mean + half


def verdict(mean: float, low: float, high: float, figure: Optional[float]) -> str:
    """reproduced | higher by X pts | lower by X pts | no figure | 1 seed: no interval (NaN bounds)."""
    if figure is None or math.isnan(figure):
        return "no figure"
    if math.isnan(low) or math.isnan(high):
        return "1 seed: no interval"
    if low <= figure <= high:
        return "reproduced"
    gap = 100 * (mean - figure)
    return f"higher by {gap:.2f} pts" if figure < low else f"lower by {-gap:.2f} pts"


def shortfall(seeds: int, epochs_run_min: int, epochs_run_max: int, full_epochs: Optional[int]) -> str:
    """How a group falls short of the report's protocol ("2 seeds (< 3); 41 of 150 epochs"), or ""."""
    short = [f"{seeds} seed{'s' if seeds != 1 else ''} (< {FULL_SEEDS})"] if seeds < FULL_SEEDS else []
    if full_epochs and epochs_run_min < full_epochs:
        ran = str(epochs_run_min) if epochs_run_min == epochs_run_max else f"{epochs_run_min}-{epochs_run_max}"
        short.append(f"{ran} of {full_epochs} epochs")
    return "; ".join(short)


def verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many arms were reproduced, came out higher or lower, have no figure or one seed, fall short."""
    kinds = table["verdict"].str.split().str[0]
    return {
        "arms": len(table),
        "reproduced": int((kinds == "reproduced").sum()),
        "higher": int((kinds == "higher").sum()),
        "lower": int((kinds == "lower").sum()),
        "no_figure": int((table["verdict"] == "no figure").sum()),
        "no_interval": int(table["verdict"].str.startswith("1 seed").sum()),
        "short_of_protocol": int((table["short_of_protocol"] != "").sum()),
    }
