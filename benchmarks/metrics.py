"""Speed of `scaling.metrics.bootstrap` against a plain scikit-learn loop.

The workload is a CODE-II-sized test set: 66 classes with long-tailed prevalences,
8,475 exams, 1,000 resamples, every metric of the report. The reference computes each
metric with scikit-learn per resample and class; it is timed on the first few resamples
and extrapolated linearly to all of them (the lines say so).

Prints one JSON line per figure. Run: ``python benchmarks/metrics.py [--reference-resamples 20]``.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
import warnings

import numpy as np
from sklearn import metrics as sk

from scaling.metrics import bootstrap, bootstrap_indices, classification_report

N_CLASSES = 66
N_EXAMS = 8_475
N_RESAMPLES = 1_000


def synthetic_test_set(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Long-tailed labels (prevalence 30% down to 0.1%) and float32 informative scores."""
    rng = np.random.default_rng(seed)
    prevalence = 0.3 * np.geomspace(1, 1 / 300, N_CLASSES)
    y = rng.random((N_EXAMS, N_CLASSES)) < prevalence
    logits = rng.normal(-2.5, 1.0, y.shape) + 2.5 * y
    return y.astype(np.int8), (1 / (1 + np.exp(-logits))).astype(np.float32)


def sklearn_metrics(y: np.ndarray, s: np.ndarray, predicted: np.ndarray) -> list[float]:
    """One binary problem's metrics the straightforward way."""
    auroc = sk.roc_auc_score(y, s) if 0 < y.sum() < len(y) else np.nan
    auprc = sk.average_precision_score(y, s) if y.any() else np.nan
    precision, recall, f1, _ = sk.precision_recall_fscore_support(
        y, predicted, average="binary", zero_division=np.nan
    )
    tn, fp, fn, _ = sk.confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    specificity = tn / (tn + fp) if tn + fp else np.nan
    npv = tn / (tn + fn) if tn + fn else np.nan
    return [auroc, auprc, f1, recall, specificity, precision, npv]


def sklearn_loop(y, s, thresholds, indices) -> np.ndarray:
    """Per resample: every class, then micro, with scikit-learn; macro as a NaN-mean."""
    out = []
    for rows in indices:
        yr, sr = y[rows], s[rows]
        pr = (sr >= thresholds).astype(np.int8)
        per_class = [sklearn_metrics(yr[:, c], sr[:, c], pr[:, c]) for c in range(y.shape[1])]
        micro = sklearn_metrics(yr.ravel(), sr.ravel(), pr.ravel())
        out.append([*per_class, micro, np.nanmean(per_class, axis=0)])
    return np.asarray(out)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-resamples", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    y, s = synthetic_test_set()
    names = [f"class{c}" for c in range(N_CLASSES)]
    thresholds = classification_report(y, s, names)["threshold"].to_numpy()[:N_CLASSES]
    shape = {"classes": N_CLASSES, "exams": N_EXAMS}

    ours = seconds(lambda: bootstrap(y, s, names, thresholds, n_resamples=N_RESAMPLES))
    timed = args.reference_resamples
    indices = bootstrap_indices(N_EXAMS, timed, seed=0)
    reference = seconds(lambda: sklearn_loop(y, s, thresholds, indices)) * N_RESAMPLES / timed
    print(
        json.dumps(
            {
                "figure": "bootstrap_all_metrics",
                **shape,
                "resamples": N_RESAMPLES,
                "seconds": round(ours, 3),
                "reference": "scikit-learn per resample and class",
                "reference_seconds": round(reference, 1),
                "reference_timing": f"measured on {timed} resamples, extrapolated to {N_RESAMPLES}",
                "speedup": round(reference / ours, 1),
                "targets": "speedup >= 20, seconds < 30",
            }
        )
    )

    report = seconds(lambda: classification_report(y, s, names))
    reference = seconds(lambda: sklearn_loop(y, s, thresholds, [np.arange(N_EXAMS)]))
    print(
        json.dumps(
            {
                "figure": "classification_report_with_f1_thresholds",
                **shape,
                "seconds": round(report, 3),
                "reference": "scikit-learn per class, given thresholds",
                "reference_seconds": round(reference, 3),
                "speedup": round(reference / report, 1),
            }
        )
    )

    tracemalloc.start()
    bootstrap(y, s, names, thresholds, n_resamples=N_RESAMPLES)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    inputs = y.nbytes + s.nbytes
    print(
        json.dumps(
            {
                "figure": "bootstrap_peak_memory",
                **shape,
                "resamples": N_RESAMPLES,
                "peak_mib": round(peak / 2**20, 1),
                "reference": "the inputs (int8 labels + float32 scores)",
                "ratio_to_inputs": round(peak / inputs, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
