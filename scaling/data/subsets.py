"""Cutting a dataset into patient-disjoint splits and nested training subsets.

The array functions are pure and seeded with `np.random.default_rng`. Row arguments
index into per-exam arrays of the whole `ExamSet` (`patient_ids`, `labels`):
`patient_ids[rows]` are the patients of `rows`.

- `carve_patients`: validation and test patients first, with their own seed.
- `pool_order`: the training pool as one seeded permutation of its patients.
- `nested_subset`: a prefix of whole patients, so every smaller subset is inside
  every larger one.
- `few_shot_subset`: k positives per class, nested in k.

`prepare_splits` composes them into a run's `Splits`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from scaling.data.dataset import DataError, ExamSet, Split


def carve_patients(
    patient_ids: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) rows, split by patient; each fraction is of patients.

    A positive fraction always gets at least one patient; train keeps the rest.
    """
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise DataError(
            "val_fraction and test_fraction must be >= 0 and sum to < 1, got "
            f"{val_fraction} and {test_fraction}"
        )
    patients, inverse = np.unique(np.asarray(patient_ids), return_inverse=True)
    n = len(patients)
    n_test = max(round(test_fraction * n), int(test_fraction > 0))
    n_val = max(round(val_fraction * n), int(val_fraction > 0))
    if n_test + n_val >= n:
        raise DataError(
            f"{n} patients are too few for val_fraction={val_fraction} and "
            f"test_fraction={test_fraction}: no training patient would be left"
        )
    role = np.zeros(n, np.int8)  # 0 train, 1 val, 2 test
    order = np.random.default_rng(seed).permutation(n)
    role[order[:n_test]] = 2
    role[order[n_test : n_test + n_val]] = 1
    row_role = role[inverse]
    return tuple(np.flatnonzero(row_role == r) for r in (0, 1, 2))


def pool_order(rows: np.ndarray, patient_ids: np.ndarray, data_seed: int) -> np.ndarray:
    """`rows` ordered by one seeded permutation of their patients (a patient's exams adjacent)."""
    rows = np.asarray(rows, dtype=np.int64)
    patients, inverse = np.unique(np.asarray(patient_ids)[rows], return_inverse=True)
    rank = np.empty(len(patients), np.int64)
    rank[np.random.default_rng(data_seed).permutation(len(patients))] = np.arange(len(patients))
    return rows[np.lexsort((rows, rank[inverse]))]


def nested_subset(
    ordered_rows: np.ndarray, patient_ids: np.ndarray, subset_size: int
) -> np.ndarray:
    """The shortest prefix of whole patients of `ordered_rows` with >= `subset_size` exams."""
    ordered_rows = np.asarray(ordered_rows, dtype=np.int64)
    pids = np.asarray(patient_ids)[ordered_rows]
    ends = np.append(np.flatnonzero(pids[1:] != pids[:-1]) + 1, len(pids))
    if len(ends) != len(np.unique(pids)):
        raise ValueError("ordered_rows must keep each patient's exams adjacent (see pool_order)")
    if subset_size < 1:
        raise ValueError(f"subset_size must be >= 1, got {subset_size}")
    if subset_size > len(ordered_rows):
        raise DataError(
            f"subset_size {subset_size} is larger than the training pool of "
            f"{len(ordered_rows)} exams from {len(ends)} patients"
        )
    return ordered_rows[: ends[np.searchsorted(ends, subset_size)]]


def few_shot_subset(
    rows: np.ndarray,
    labels: np.ndarray,
    k: int,
    seed: int,
    *,
    class_names: tuple[str, ...] = (),
) -> np.ndarray:
    """At least k positive exams per class from `rows`, nested in k.

    Rounds r = 1..k: each class still short of r positives in the subset takes its
    next exam from its own seeded order of positives. An exam positive for several
    classes counts for each. The subset for k is a prefix of the subset for k' > k.
    Classes with fewer than k positives take all they have (with a warning).
    """
    if k < 1:
        raise ValueError(f"k (shots) must be >= 1, got {k}")
    rows = np.asarray(rows, dtype=np.int64)
    positive = np.asarray(labels)[rows] > 0.5
    rng = np.random.default_rng(seed)
    queues = [rng.permutation(np.flatnonzero(positive[:, c])) for c in range(positive.shape[1])]
    taken = np.zeros(len(rows), bool)
    count = np.zeros(positive.shape[1], np.int64)
    nxt = np.zeros(positive.shape[1], np.int64)
    chosen: list[int] = []
    for r in range(1, k + 1):
        for c, queue in enumerate(queues):
            while count[c] < r and nxt[c] < len(queue):
                i = queue[nxt[c]]
                nxt[c] += 1
                if not taken[i]:
                    taken[i] = True
                    chosen.append(i)
                    count += positive[i]
    short = np.flatnonzero(count < k)
    if len(short):
        names = class_names or tuple(str(c) for c in range(positive.shape[1]))
        listed = ", ".join(f"{names[c]} ({count[c]})" for c in short)
        warnings.warn(f"fewer than {k} positives for class(es) {listed}; took all", stacklevel=2)
    return rows[np.asarray(chosen, dtype=np.int64)]


# ---------------------------------------------------------------------------
# A run's splits


@dataclass(frozen=True)
class Splits:
    """The splits of one run.

    `pool` is the whole training pool in its seeded order; `train` is its nested
    subset (or few-shot subset).
    """

    train: Split
    val: Split
    test: Split
    pool: Split

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.exams.class_names

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def prepare_splits(
    exams: ExamSet,
    test_exams: ExamSet | None,
    *,
    given_split: bool,
    val_fraction: float,
    test_fraction: float,
    split_seed: int,
    data_seed: int,
    subset_size: int,
    shots: int,
) -> Splits:
    """Cut `exams` into train / val / test (by patient), the seeded pool and its subset.

    A fixed split in `info["split"]` (PTB-XL folds) wins unless `given_split` is off; else
    `test_exams` is the test set and only validation is carved; else both are carved by
    `split_seed`. The arguments are the `data.*` fields of the same names.
    """
    if shots > 0 and subset_size > 0:
        raise DataError(f"set subset_size ({subset_size}) or shots ({shots}), not both")
    test_set = exams
    if given_split and "split" in exams.info.columns:
        split = exams.info["split"].to_numpy()
        unknown = set(np.unique(split.astype(str))) - {"train", "val", "test"}
        if unknown:
            raise DataError(
                f"{exams.source}: info['split'] holds {sorted(unknown)}, "
                "expected 'train', 'val' or 'test'"
            )
        train, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    elif test_exams is not None:
        _check_same_layout(exams, test_exams)
        test_set = test_exams
        train, val, _ = carve_patients(exams.patient_ids, val_fraction, 0.0, split_seed)
        test = np.arange(len(test_exams))
    else:
        train, val, test = carve_patients(
            exams.patient_ids, val_fraction, test_fraction, split_seed
        )
    for name, rows in (("train", train), ("val", val), ("test", test)):
        if len(rows) == 0:
            warnings.warn(f"{exams.source}: the {name} split is empty", stacklevel=2)
    pool = pool_order(train, exams.patient_ids, data_seed)
    if shots > 0:
        names = exams.class_names
        subset = few_shot_subset(pool, exams.labels, shots, data_seed, class_names=names)
    elif subset_size > 0:
        subset = nested_subset(pool, exams.patient_ids, subset_size)
    else:
        subset = pool
    return Splits(
        train=Split(exams, subset),
        val=Split(exams, val),
        test=Split(test_set, test),
        pool=Split(exams, pool),
    )


def _check_same_layout(exams: ExamSet, test: ExamSet) -> None:
    if test.class_names != exams.class_names or test.lead_names != exams.lead_names:
        raise DataError(
            f"{test.source}: the test set has classes {test.class_names} and leads "
            f"{test.lead_names}; the training set has {exams.class_names} and {exams.lead_names}"
        )
