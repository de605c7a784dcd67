"""Our port of the released Broken Neural Scaling Laws fit (benchmarks/bnsl.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bnsl

PLANTED = (0.1, 5.0, 0.1, 0.5, 400.0, 0.3)  # a, b, c0, c1, d1, f1: the break inside the data


def log_rmse(prediction: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.log(prediction) - np.log(actual)) ** 2)))


def test_fit_to_a_planted_one_break_curve_extrapolates_ten_times_beyond_its_last_point():
    x = np.geomspace(100, 1000, 20)
    beyond = np.geomspace(1000, 10_000, 30)[1:]
    y, truth = bnsl.one_break(x, *PLANTED), bnsl.one_break(beyond, *PLANTED)

    fit = bnsl.bnsl(x, y)

    assert bnsl.BREAKS == 1 and fit.refined
    assert log_rmse(fit(beyond), truth) < 1e-3
    # the grid point alone and a plain power law both miss the steeper slope after the break
    assert log_rmse(bnsl.BNSLFit(fit.start, fit.start, False)(beyond), truth) > 0.1
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    assert log_rmse(np.exp(intercept + slope * np.log(beyond)), truth) > 0.1


def test_predictions_go_through_logs_where_the_direct_product_overflows():
    params = np.array([0.2, 1e-200, -40.0, 41.0, 1e6, 0.5])  # b·x^40 overflows, the law does not
    x = np.array([1e3, 1e9])
    fit = bnsl.BNSLFit(params, params, True)

    assert not np.isfinite(bnsl.one_break(x, *params)[1])
    expected = bnsl.bnsl_curve_log_space(x, 0.2, 1e-200, -40.0, [41.0], [1e6], [0.5])
    np.testing.assert_allclose(fit(x), expected, rtol=1e-12)
    np.testing.assert_allclose(fit(x)[0], bnsl.one_break(x, *params)[0], rtol=1e-12)
    assert np.all(np.isfinite(fit(x)))
