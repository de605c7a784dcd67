"""The benchmark's ports of the published estimators M1–M4 on planted curves."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import references

X = np.geomspace(1e3, 1e6, 12)
AHEAD = np.geomspace(2e6, 1e7, 5)


def log_error(predict, x, y) -> float:
    return float(np.max(np.abs(np.log(predict(x)) - np.log(y))))


def test_m1_recovers_a_power_law_and_m3_its_saturating_relative():
    assert log_error(references.m1(X, 3.0 * X**-0.3), AHEAD, 3.0 * AHEAD**-0.3) < 1e-9
    planted = lambda x: 2.0 * (1 / x + 1e-5) ** 0.4  # noqa: E731
    assert log_error(references.m3(X, planted(X)), AHEAD, planted(AHEAD)) < 1e-3
    assert log_error(references.m1(X, planted(X)), AHEAD, planted(AHEAD)) > 0.05


@pytest.fixture
def fewer_rounds(monkeypatch):
    """At most 300 rounds (of 10,000) of 100 gradient steps (of 1,000): the same algorithm,
    stopped sooner, for a fast suite."""
    monkeypatch.setattr(references, "ROUNDS", 300)
    monkeypatch.setattr(references, "GRADIENT_STEPS", 100)


def test_m4_extrapolates_a_sigmoid_like_curve_that_m1_misses(fewer_rounds):
    def planted(x: np.ndarray) -> np.ndarray:  # (y − 0.1)/(1 − y)^0.5 = 30·x^−0.4
        f, w = 30.0 * x**-0.4, np.linspace(0, 0.9, 200_001)[:, None]
        return 0.1 + w[np.argmin(np.abs(w - f * (0.9 - w) ** 0.5), axis=0), 0]

    y = planted(X)
    assert log_error(references.m4(X, y), AHEAD, planted(AHEAD)) < 0.03
    assert log_error(references.m1(X, y), AHEAD, planted(AHEAD)) > 0.1


def test_batched_m2_and_m4_equal_one_curve_at_a_time_on_curves_of_different_lengths(
    fewer_rounds,
):
    rng = np.random.default_rng(0)
    curves = []
    for n, floor in ((8, 0.05), (12, 0.2), (6, 0.0)):
        x = np.geomspace(100, 1e5, n)
        curves.append((x, (floor + 0.8 * x**-0.25) * np.exp(rng.normal(0, 0.01, n))))
    for one, many in ((references.m2, references.m2_many), (references.m4, references.m4_many)):
        together = many(curves)
        for (x, y), predict in zip(curves, together, strict=True):
            np.testing.assert_allclose(predict(AHEAD), one(x, y)(AHEAD), rtol=1e-7)


def test_the_three_column_nnls_matches_scipy():
    rng = np.random.default_rng(1)
    design = rng.normal(size=(50, 9, 3))
    target = rng.normal(size=(50, 9))
    solve = references.Nnls3(design)
    ours = solve.solve(np.arange(50), target)
    for i in range(50):
        np.testing.assert_allclose(ours[i], optimize.nnls(design[i], target[i])[0], atol=1e-9)
    assert (ours == 0).any() and (ours > 0).any()  # both faces of the orthant were met


@pytest.mark.parametrize("name", ["M1", "M2", "M3", "M4"])
def test_every_reference_is_a_callable_x_y_to_predict(name, fewer_rounds):
    y = 0.1 + X**-0.3
    predict = references.REFERENCES[name](X, y)
    out = predict(AHEAD)
    assert out.shape == AHEAD.shape and np.all(out > 0) and np.all(np.diff(out) <= 0)
