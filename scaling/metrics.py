"""Multi-label classification metrics, F1 thresholds and bootstrap confidence intervals.

Every metric is computed exactly from counts, with numpy:

- ranking metrics (AUROC, AUPRC = average precision) from the score groups (tied
  scores) that hold a positive, walked from the highest score down;
- threshold metrics (F1, recall, specificity, precision, NPV) from the confusion counts
  at one threshold per class, where an exam is predicted positive when
  ``score >= threshold``.

All counts are weighted sums over exams. On the data as given every exam weighs 1; in a
bootstrap resample an exam weighs the number of times it was drawn. So one resample is a
column of per-exam counts, and the counts a metric needs are, for all resamples at once,
a fixed (segments x exams) matrix built from the scores sorted once on the full data,
times the (exams x resamples) count matrix. No resample is ever re-sorted.

A metric whose denominator is zero (e.g. recall of a class with no positives) is NaN,
never an error; `classification_report` warns naming the class.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse

from scaling.errors import ScalingError

METRICS = ("auroc", "auprc", "f1", "recall", "specificity", "precision", "npv")

_BCE_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] before the log
_CHUNK_BYTES = 32 * 2**20  # bound on one (segments or exams) x resamples float64 array
_MAX_CHUNK = 256  # resamples per chunk; small chunks keep the count matrix in cache


class MetricsError(ScalingError):
    """Bad input to a metric; the message names the argument and what was expected."""


class UndefinedMetricWarning(UserWarning):
    """A metric is NaN because its denominator is zero (e.g. a class without positives)."""


def classification_report(
    y_true: np.ndarray,
    y_score: np.ndarray,
    class_names: Sequence[str],
    thresholds: str | np.ndarray = "f1",
) -> pd.DataFrame:
    """Per-class, micro and macro metrics of multi-label predictions.

    Args:
        y_true: (exams, classes) labels in {0, 1}.
        y_score: (exams, classes) probabilities (any finite scores work).
        class_names: one name per column.
        thresholds: ``"f1"`` to pick, per class, the threshold maximising F1 on these
            data (see `best_f1_thresholds`), or an array of one threshold per class
            (e.g. chosen on validation). A NaN threshold predicts no positives.

    Returns:
        A frame indexed by the class names, then ``"micro"`` and ``"macro"``, with columns
        ``auroc, auprc, f1, recall, specificity, precision, npv, threshold``. Micro pools
        all (exam, class) pairs: AUROC and AUPRC on the flattened scores, threshold metrics
        from confusion counts summed over classes (each class at its threshold). Macro is
        the mean of the class rows, ignoring NaN. Both have a NaN threshold.
    """
    y, s = _check_inputs(y_true, y_score, class_names)
    t = _resolve_thresholds(thresholds, y, s)
    return _report(_rankings(y, s), y, s >= t, t, class_names)


def best_f1_thresholds(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Per class, the score threshold that maximises F1 on these data.

    The candidates are the class's score values; an exam is predicted positive when
    ``score >= threshold``. When several thresholds reach the same (maximal) F1, the
    smallest is taken, i.e. the one with the most positive calls (highest recall). A class
    without positives has no best threshold: NaN, with a warning.

    Returns:
        (classes,) float64 thresholds.
    """
    y, s = _check_inputs(y_true, y_score, None)
    thresholds = _f1_thresholds(y, s)
    for c in np.flatnonzero(np.isnan(thresholds)):
        warnings.warn(
            f"column {c} has no positive exams: no F1 threshold (NaN)",
            UndefinedMetricWarning,
            stacklevel=2,
        )
    return thresholds


def bootstrap(
    y_true: np.ndarray,
    y_score: np.ndarray,
    class_names: Sequence[str],
    thresholds: str | np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Percentile confidence intervals of every metric, resampling exams with replacement.

    The thresholds are held fixed across resamples, as chosen before resampling (the usual
    practice: on validation; ``"f1"`` chooses them once on these full data). The resamples
    are `bootstrap_indices(len(y_true), n_resamples, seed)`. A resample in which a metric is
    undefined (e.g. a class drew no positives) is left out of that metric's interval.

    Returns:
        A frame with the index of `classification_report` and, for each metric in
        `METRICS`, the columns ``<metric>`` (the estimate on the full data),
        ``<metric>_low`` and ``<metric>_high`` (the ``level`` interval's bounds).
    """
    y, s = _check_inputs(y_true, y_score, class_names)
    if not 0 < level < 1:
        raise MetricsError(f"level must lie strictly between 0 and 1; got {level}")
    if n_resamples < 1:
        raise MetricsError(f"n_resamples must be at least 1; got {n_resamples}")
    t = _resolve_thresholds(thresholds, y, s)
    rankings = _rankings(y, s)
    predicted = s >= t
    point = _report(rankings, y, predicted, t, class_names)
    largest = max(len(y), *(r.segments.shape[0] for r in rankings))
    chunk = int(np.clip(_CHUNK_BYTES // (8 * largest), 1, _MAX_CHUNK))
    parts = []
    for first in range(0, n_resamples, chunk):
        drawn = _draws(len(y), range(first, min(first + chunk, n_resamples)), seed)
        parts.append(_metrics(rankings, y, predicted, _draw_counts(drawn, len(y))))

    tail = 50 * (1 - level)
    table = {}
    for m in METRICS:
        resampled = np.concatenate([p[m] for p in parts])
        with warnings.catch_warnings():  # an all-NaN column gives a NaN interval
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanpercentile(resampled, [tail, 100 - tail], axis=0)
        table |= {m: point[m].to_numpy(), f"{m}_low": low, f"{m}_high": high}
    return pd.DataFrame(table, index=point.index)


def bootstrap_indices(n_exams: int, n_resamples: int, seed: int) -> np.ndarray:
    """The exam rows drawn by `bootstrap`: (n_resamples, n_exams), seeded."""
    return _draws(n_exams, range(n_resamples), seed)


def bce_loss(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean binary cross-entropy over all (exam, class) pairs, from probabilities.

    Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` so that a confident mistake costs a
    large but finite loss.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_score, dtype=np.float64)
    if y.shape != p.shape or y.size == 0:
        raise MetricsError(
            f"y_true and y_score must have the same non-empty shape; got {y.shape} and {p.shape}"
        )
    p = np.clip(p, _BCE_EPS, 1 - _BCE_EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


# ---------------------------------------------------------------------------
# Input checks


def _check_inputs(
    y_true: np.ndarray, y_score: np.ndarray, class_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Labels as bool and scores as float64, both (exams, classes), or a `MetricsError`."""
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 2 or s.shape != y.shape or len(y) == 0:
        raise MetricsError(
            "y_true and y_score must both be (exams, classes) with at least one exam; "
            f"got shapes {y.shape} and {s.shape}"
        )
    if class_names is not None:
        names = list(class_names)
        if len(names) != y.shape[1]:
            raise MetricsError(
                f"class_names has {len(names)} names for {y.shape[1]} columns of y_true"
            )
        clashes = sorted({n for n in names if names.count(n) > 1 or n in ("micro", "macro")})
        if clashes:
            raise MetricsError(f"class_names must be unique and not micro/macro; got {clashes}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise MetricsError(f"y_true must hold only 0 and 1; found {np.unique(y[bad])[:5]}")
    if not np.isfinite(s).all():
        columns = np.flatnonzero(~np.isfinite(s).all(axis=0))
        raise MetricsError(f"y_score must be finite; NaN or inf in columns {columns[:5]}")
    return y.astype(bool), s


def _resolve_thresholds(thresholds: str | np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(classes,) thresholds from ``"f1"`` or an array of one per class."""
    if isinstance(thresholds, str):
        if thresholds != "f1":
            raise MetricsError(f'thresholds must be "f1" or an array; got {thresholds!r}')
        return _f1_thresholds(y, s)
    t = np.asarray(thresholds, dtype=np.float64)
    if t.shape != (y.shape[1],):
        raise MetricsError(f"thresholds must have shape ({y.shape[1]},); got {t.shape}")
    return t


def _report(
    rankings: list[_Ranking],
    y: np.ndarray,
    predicted: np.ndarray,
    thresholds: np.ndarray,
    class_names: Sequence[str],
) -> pd.DataFrame:
    """The `classification_report` frame of checked inputs; warns about NaN metrics."""
    values = _metrics(rankings, y, predicted, np.ones((len(y), 1)))
    index = pd.Index([*class_names, "micro", "macro"], name="class")
    report = pd.DataFrame({m: values[m][0] for m in METRICS}, index=index)
    report["threshold"] = [*thresholds, np.nan, np.nan]
    _warn_undefined(report.iloc[:-1], y, predicted)
    return report


def _warn_undefined(report: pd.DataFrame, y: np.ndarray, predicted: np.ndarray) -> None:
    """Warn once per class (and micro) that has NaN metrics, saying why."""
    positives = [*y.sum(axis=0), y.sum()]
    negatives = [*(~y).sum(axis=0), (~y).sum()]
    calls = [*predicted.sum(axis=0), predicted.sum()]
    rows = zip(report.iterrows(), positives, negatives, calls, strict=True)
    for (name, row), n_pos, n_neg, n_calls in rows:
        undefined = [m for m in METRICS if np.isnan(row[m])]
        if undefined:
            warnings.warn(
                f"class {name!r}: {', '.join(undefined)} undefined (NaN) with {n_pos} "
                f"positive and {n_neg} negative labels and {n_calls} positive calls",
                UndefinedMetricWarning,
                stacklevel=4,  # the caller of classification_report or bootstrap
            )


# ---------------------------------------------------------------------------
# Thresholds


def _f1_thresholds(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Per class, the smallest score value reaching the maximal F1; NaN without positives."""
    thresholds = np.full(y.shape[1], np.nan)
    for c in range(y.shape[1]):
        values, group = np.unique(s[:, c], return_inverse=True)
        # Predicting score >= values[j] calls every group from j up: suffix sums.
        tp = np.cumsum(np.bincount(group, weights=y[:, c])[::-1])[::-1]
        calls = np.cumsum(np.bincount(group)[::-1])[::-1]
        if tp[0] == 0:
            continue
        f1 = 2 * tp / (calls + tp[0])  # exact ties: equal fractions round equally
        thresholds[c] = values[np.argmax(f1)]  # argmax: the first, i.e. smallest, threshold
    return thresholds


# ---------------------------------------------------------------------------
# Counting and metrics for many exam weightings at once


@dataclass(frozen=True)
class _Ranking:
    """One ranking problem (a class, or every (exam, class) pair for micro) as sums over exams.

    The score groups (equal scores) that hold a positive, from the highest score down,
    are numbered 0..G-1. Row k of `segments` picks the positives of group k, row G + k the
    negatives of group k, and row 2G + k the negatives scoring strictly between groups
    k - 1 and k (row 3G: below the last group). Entry [row, exam] counts that exam's pairs
    in the row, so ``segments @ weights`` gives every row's weighted count.
    """

    segments: scipy.sparse.csr_array  # (3G + 1, exams)
    n_groups: int


def _ranking(y: np.ndarray, s: np.ndarray, exams: np.ndarray, n_exams: int) -> _Ranking:
    """The `_Ranking` of pairs with labels `y` and scores `s` belonging to rows `exams`."""
    values, group = np.unique(s, return_inverse=True)
    rank = len(values) - 1 - group  # 0 = the highest score
    positive_ranks = np.unique(rank[y])
    g = len(positive_ranks)
    above = np.searchsorted(positive_ranks, rank)  # positive groups above or at each pair
    tied = np.isin(rank, positive_ranks)  # in a group that holds a positive
    row = np.where(y, above, np.where(tied, g + above, 2 * g + above))
    segments = scipy.sparse.csr_array(
        (np.ones(len(row)), (row, exams)), shape=(3 * g + 1, n_exams)
    )  # duplicate (row, exam) entries are summed
    return _Ranking(segments, g)


def _rankings(y: np.ndarray, s: np.ndarray) -> list[_Ranking]:
    """The ranking of each class, then of all (exam, class) pairs pooled (micro)."""
    n, c = y.shape
    exams = np.arange(n)
    per_class = [_ranking(y[:, j], s[:, j], exams, n) for j in range(c)]
    return [*per_class, _ranking(y.ravel(), s.ravel(), np.repeat(exams, c), n)]


def _ranking_metrics(counts: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AUPRC, (weightings,), from a ranking's (3G + 1, weightings) row counts.

    AUROC is the probability that a positive outscores a negative (ties count half):
    positives of group k beat the negatives below it and tie with its own. AUPRC is the
    average precision: the precision after each group, weighted by its positives.
    """
    tp, fp, gap = counts[:g], counts[g : 2 * g], counts[2 * g :]
    n_pos = tp.sum(axis=0)
    n_neg = fp.sum(axis=0) + gap.sum(axis=0)
    tp_through = np.cumsum(tp, axis=0)
    fp_through = np.cumsum(fp + gap[:g], axis=0)
    fp_before = fp_through - fp
    # Twice the count of (positive, negative) pairs ordered right, ties counted half.
    pairs = (tp * (2 * n_neg - fp_through - fp_before)).sum(axis=0)
    # Where nothing is called yet, tp is 0 as well: any finite precision will do.
    precision = tp_through / np.maximum(tp_through + fp_through, 1)
    # A cumulative (sequential) sum, so that groups a resample did not draw add exact
    # zeros and the result equals that of the resample's own, shorter list of groups.
    weighted = np.cumsum(tp * precision, axis=0)[-1] if g else np.zeros(counts.shape[1])
    return _ratio(pairs, 2 * n_pos * n_neg), _ratio(weighted, n_pos)


def _metrics(
    rankings: list[_Ranking], y: np.ndarray, predicted: np.ndarray, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Every metric as (weightings, classes + micro + macro), for (exams, weightings) weights."""
    n_classes = y.shape[1]
    ranked = [_ranking_metrics(r.segments @ weights, r.n_groups) for r in rankings]
    values = {
        "auroc": np.stack([auroc for auroc, _ in ranked], axis=1),
        "auprc": np.stack([auprc for _, auprc in ranked], axis=1),
    }

    indicators = np.concatenate([y & predicted, predicted, y], axis=1).astype(np.float64)
    counts = (indicators.T @ weights).T  # (weightings, 3 * classes), exact integer sums
    tp, calls, pos = np.split(counts, 3, axis=1)
    tp, calls, pos = (np.column_stack([x, x.sum(axis=1)]) for x in (tp, calls, pos))
    total = weights.sum(axis=0)[:, None] * np.r_[np.ones(n_classes), n_classes]
    tn = total - calls - pos + tp
    values |= {
        "f1": _ratio(2 * tp, pos + calls),
        "recall": _ratio(tp, pos),
        "specificity": _ratio(tn, total - pos),
        "precision": _ratio(tp, calls),
        "npv": _ratio(tn, total - calls),
    }
    return {m: _with_macro(values[m], n_classes) for m in METRICS}


def _with_macro(values: np.ndarray, n_classes: int) -> np.ndarray:
    """Append the NaN-ignoring mean of the class columns (NaN when all are NaN)."""
    classes = values[:, :n_classes]
    defined = ~np.isnan(classes)
    macro = _ratio(np.where(defined, classes, 0).sum(axis=1), defined.sum(axis=1))
    return np.column_stack([values, macro])


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is zero."""
    numerator, denominator = np.broadcast_arrays(numerator, denominator)
    out = np.full(numerator.shape, np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator != 0)


def _draw_counts(indices: np.ndarray, n_exams: int) -> np.ndarray:
    """(exams, resamples) float64 counts of how often each resample drew each exam."""
    n_resamples = len(indices)
    flat = indices.astype(np.int64) * n_resamples + np.arange(n_resamples)[:, None]
    counts = np.bincount(flat.ravel(), minlength=n_exams * n_resamples)
    return counts.reshape(n_exams, n_resamples).astype(np.float64)


def _draws(n_exams: int, resamples: range, seed: int) -> np.ndarray:
    """The rows drawn by the given resamples; each resample has its own seeded stream, so
    any chunk of resamples can be drawn without the others."""
    return np.stack(
        [
            np.random.default_rng([seed, r]).integers(0, n_exams, n_exams, dtype=np.int32)
            for r in resamples
        ]
    )
