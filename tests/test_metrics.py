"""scaling.metrics against scikit-learn, brute force and a slow bootstrap loop."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scaling.metrics import (
    METRICS,
    MetricsError,
    UndefinedMetricWarning,
    bce_loss,
    best_f1_thresholds,
    bootstrap,
    bootstrap_indices,
    classification_report,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")

TOL = 1e-9


def labelled_data(n: int, prevalences: list[float], seed: int, decimals: int | None = None):
    """Labels with the given prevalences and informative scores (rounded to make ties)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(prevalences))) < prevalences).astype(int)
    s = np.clip(0.3 * y + rng.normal(0.35, 0.2, y.shape), 0, 1)
    if decimals is not None:
        s = np.round(s, decimals)
    return y, s


def sklearn_row(y: np.ndarray, s: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The report's metrics for one binary problem, all from scikit-learn."""
    defined = 0 < y.sum() < len(y)
    precision, recall, f1, _ = sklearn_metrics.precision_recall_fscore_support(
        y, predicted, average="binary", zero_division=np.nan
    )
    tn, fp, fn, _ = sklearn_metrics.confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    return {
        "auroc": sklearn_metrics.roc_auc_score(y, s) if defined else np.nan,
        "auprc": sklearn_metrics.average_precision_score(y, s) if y.any() else np.nan,
        "f1": f1,
        "recall": recall,
        "specificity": tn / (tn + fp) if tn + fp else np.nan,
        "precision": precision,
        "npv": tn / (tn + fn) if tn + fn else np.nan,
    }


def sklearn_report(y: np.ndarray, s: np.ndarray, thresholds: np.ndarray) -> pd.DataFrame:
    """Classes, micro and macro rows computed with scikit-learn."""
    predicted = (s >= thresholds).astype(int)
    rows = [sklearn_row(y[:, c], s[:, c], predicted[:, c]) for c in range(y.shape[1])]
    rows.append(sklearn_row(y.ravel(), s.ravel(), predicted.ravel()))
    table = pd.DataFrame(rows)[list(METRICS)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        macro = table.iloc[:-1].mean(skipna=True)
    return pd.concat([table, macro.to_frame().T], ignore_index=True)


def assert_matches_sklearn(y: np.ndarray, s: np.ndarray, thresholds="f1") -> None:
    names = [f"c{c}" for c in range(y.shape[1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        report = classification_report(y, s, names, thresholds)
    assert list(report.index) == [*names, "micro", "macro"]
    assert list(report.columns) == [*METRICS, "threshold"]
    expected = sklearn_report(y, s, report["threshold"].to_numpy()[:-2])
    np.testing.assert_allclose(
        report[list(METRICS)].to_numpy(), expected.to_numpy(), rtol=0, atol=TOL
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_on_continuous_scores(seed):
    y, s = labelled_data(400, [0.02, 0.1, 0.3, 0.5, 0.9], seed)
    assert_matches_sklearn(y, s)
    assert_matches_sklearn(y, s, thresholds=np.full(5, 0.5))


@pytest.mark.parametrize("decimals", [0, 1, 2])
def test_matches_sklearn_on_heavily_tied_scores(decimals):
    y, s = labelled_data(500, [0.05, 0.2, 0.4, 0.7], seed=decimals, decimals=decimals)
    assert_matches_sklearn(y, s)
    assert_matches_sklearn(y, s, thresholds=np.array([0.3, 0.5, 0.5, 0.9]))


def test_matches_sklearn_on_all_equal_scores():
    y, _ = labelled_data(200, [0.1, 0.5, 0.8], seed=3)
    s = np.full(y.shape, 0.5)
    assert_matches_sklearn(y, s)
    with pytest.warns(UndefinedMetricWarning, match="npv undefined"):  # all called positive
        report = classification_report(y, s, ["a", "b", "c"])
    np.testing.assert_array_equal(report["auroc"], 0.5)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.int8, (30, 3), elements=st.integers(0, 1)),
    arrays(np.float64, (30, 3), elements=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0])),
    arrays(np.float64, 3, elements=st.sampled_from([0.0, 0.3, 0.5, 1.0, 2.0])),
)
def test_matches_sklearn_on_any_small_multilabel_data(y, s, thresholds):
    assert_matches_sklearn(y, s)
    assert_matches_sklearn(y, s, thresholds)


@pytest.mark.parametrize("decimals", [None, 1])
def test_f1_threshold_is_the_smallest_optimal_candidate(decimals):
    y, s = labelled_data(120, [0.05, 0.3, 0.6], seed=4, decimals=decimals)
    thresholds = best_f1_thresholds(y, s)
    for c, chosen in enumerate(thresholds):
        candidates = np.unique(s[:, c])
        f1 = np.array(
            [sklearn_metrics.f1_score(y[:, c], s[:, c] >= t, zero_division=0) for t in candidates]
        )
        assert chosen == candidates[np.flatnonzero(f1 == f1.max())[0]]
        assert f1.max() == pytest.approx(
            sklearn_metrics.f1_score(y[:, c], s[:, c] >= chosen), abs=TOL
        )
    report = classification_report(y, s, ["a", "b", "c"])
    np.testing.assert_array_equal(report["threshold"].to_numpy()[:3], thresholds)


def test_f1_tie_goes_to_the_smallest_threshold():
    # Calling the top exam and calling all four both give F1 = 2/3.
    y = np.array([[1], [0], [0], [1]])
    s = np.array([[0.9], [0.8], [0.7], [0.6]])
    np.testing.assert_array_equal(best_f1_thresholds(y, s), [0.6])


def test_class_without_positives_or_negatives_gives_nan_and_a_warning():
    y, s = labelled_data(100, [0.3, 0.3, 0.3], seed=5)
    y[:, 1] = 0
    y[:, 2] = 1
    with pytest.warns(UndefinedMetricWarning) as caught:
        report = classification_report(y, s, ["ok", "no_pos", "no_neg"])
    messages = " ".join(str(w.message) for w in caught)
    assert "'no_pos'" in messages and "'no_neg'" in messages and "'ok'" not in messages
    assert report.loc["no_pos", ["auroc", "auprc", "recall", "f1", "threshold"]].isna().all()
    assert report.loc["no_neg", ["auroc", "specificity"]].isna().all()
    assert report.loc["no_neg", "auprc"] == 1.0
    assert report.loc["ok"].drop("threshold").notna().all()
    assert report.loc["macro", "auroc"] == report.loc["ok", "auroc"]
    with pytest.warns(UndefinedMetricWarning, match="column 1"):
        assert np.isnan(best_f1_thresholds(y, s)[1])


@pytest.mark.parametrize(
    ("y", "s", "names", "thresholds", "match"),
    [
        (np.zeros((5, 2)), np.zeros((5, 3)), ["a", "b"], "f1", "shapes"),
        (np.full((5, 2), 2), np.zeros((5, 2)), ["a", "b"], "f1", "only 0 and 1"),
        (np.zeros((5, 2)), np.full((5, 2), np.nan), ["a", "b"], "f1", "finite"),
        (np.zeros((5, 2)), np.zeros((5, 2)), ["a"], "f1", "class_names"),
        (np.zeros((5, 2)), np.zeros((5, 2)), ["a", "micro"], "f1", "micro"),
        (np.zeros((5, 2)), np.zeros((5, 2)), ["a", "b"], np.zeros(3), "thresholds"),
        (np.zeros((5, 2)), np.zeros((5, 2)), ["a", "b"], "best", "thresholds"),
    ],
)
def test_bad_input_is_a_clear_error(y, s, names, thresholds, match):
    with pytest.raises(MetricsError, match=match):
        classification_report(y, s, names, thresholds)


def test_bce_loss_matches_sklearn_log_loss():
    y, s = labelled_data(200, [0.1, 0.5], seed=6)
    expected = np.mean([sklearn_metrics.log_loss(y[:, c], s[:, c]) for c in range(2)])
    assert bce_loss(y, s) == pytest.approx(expected, abs=1e-6)  # differ only in clipping
    assert np.isfinite(bce_loss(np.ones((3, 1)), np.zeros((3, 1))))


def slow_bootstrap(y, s, names, thresholds, n_resamples, seed, level):
    """The reference: one classification_report per resample, on the same resamples."""
    resampled = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for rows in bootstrap_indices(len(y), n_resamples, seed):
            report = classification_report(y[rows], s[rows], names, thresholds)
            resampled.append(report[list(METRICS)].to_numpy())
        stacked = np.stack(resampled)
    tail = 50 * (1 - level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(stacked, [tail, 100 - tail], axis=0)


def test_bootstrap_equals_a_loop_of_reports_on_the_same_resamples():
    y, s = labelled_data(150, [0.0, 0.05, 0.3, 0.8], seed=7, decimals=1)
    y[:2, 0] = 1  # two positives: about one resample in eight draws neither
    names = ["rare", "uncommon", "common", "frequent"]
    thresholds = np.array([0.4, 0.5, 0.5, 0.6])
    table = bootstrap(y, s, names, thresholds, n_resamples=300, seed=3, level=0.9)
    low, high = slow_bootstrap(y, s, names, thresholds, 300, 3, 0.9)
    np.testing.assert_array_equal(table[[f"{m}_low" for m in METRICS]].to_numpy(), low)
    np.testing.assert_array_equal(table[[f"{m}_high" for m in METRICS]].to_numpy(), high)
    point = classification_report(y, s, names, thresholds)
    pd.testing.assert_frame_equal(table[list(METRICS)], point[list(METRICS)])
    assert table.loc["rare", ["auroc_low", "auroc_high"]].notna().all()


def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_more_exams():
    prevalences = [0.05, 0.2, 0.5]
    widths = []
    for n in (300, 3000):
        y, s = labelled_data(n, prevalences, seed=8)
        table = bootstrap(y, s, ["a", "b", "c"], "f1", n_resamples=400)
        for m in METRICS:
            assert (table[f"{m}_low"] <= table[m]).all() and (table[m] <= table[f"{m}_high"]).all()
        widths.append(
            np.stack([table[f"{m}_high"] - table[f"{m}_low"] for m in METRICS]).astype(float)
        )
    assert (widths[1] < widths[0]).all()


def test_bootstrap_is_deterministic_under_the_seed():
    y, s = labelled_data(200, [0.1, 0.4], seed=9)
    first = bootstrap(y, s, ["a", "b"], "f1", n_resamples=100, seed=1)
    pd.testing.assert_frame_equal(first, bootstrap(y, s, ["a", "b"], "f1", n_resamples=100, seed=1))
    other = bootstrap(y, s, ["a", "b"], "f1", n_resamples=100, seed=2)
    assert not np.array_equal(first.to_numpy(), other.to_numpy())
    assert list(first.columns) == [f"{m}{end}" for m in METRICS for end in ("", "_low", "_high")]
