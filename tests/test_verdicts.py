"""The statistics and the verdict, on constructed numbers."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from cifar_exp.verdicts import shortfall, t_interval, verdict


def test_t_interval_is_the_student_t_interval_of_the_mean():
    mean, low, high = t_interval([0.50, 0.52, 0.54])
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t(0.975, 2 dof) * s / sqrt(n)
    assert mean == pytest.approx(0.52) and low == pytest.approx(0.52 - half) and high == pytest.approx(0.52 + half)
    assert stats.t.interval(0.95, 2, loc=mean, scale=stats.sem([0.50, 0.52, 0.54])) == pytest.approx((low, high))
    assert t_interval([0.4, 0.4]) == (pytest.approx(0.4), pytest.approx(0.4), pytest.approx(0.4))  # no spread
    mean, low, high = t_interval([0.3])
    assert mean == 0.3 and math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize(
    "figure,expected",
    [
        (0.52, "reproduced"),  # inside the interval
        (0.471, "reproduced"),  # just inside its lower edge (0.4703)
        (0.470, "higher by 5.00 pts"),  # just outside it
        (0.60, "lower by 8.00 pts"),  # the report's figure above the interval: we measured less
        (0.45, "higher by 7.00 pts"),  # below it: we measured more
        (None, "no figure"),
        (math.nan, "no figure"),
    ],
)
def test_verdict_against_an_interval(figure, expected):
    mean, low, high = t_interval([0.50, 0.52, 0.54])
    assert verdict(mean, low, high, figure) == expected


def test_verdict_of_one_seed_and_of_an_edge():
    assert verdict(0.5, math.nan, math.nan, 0.5) == "1 seed: no interval"
    assert verdict(0.5, math.nan, math.nan, None) == "no figure"
    assert verdict(0.5, 0.45, 0.55, 0.55) == "reproduced"  # the edges belong to the interval


def test_shortfall_names_missing_seeds_and_epochs_without_extrapolating():
    assert shortfall(3, 100, 100, 100) == ""
    assert shortfall(2, 100, 100, 100) == "2 seeds (< 3)"
    assert shortfall(1, 41, 41, 150) == "1 seed (< 3); 41 of 150 epochs"
    assert shortfall(5, 91, 100, 100) == "91-100 of 100 epochs"
