"""Cutting a dataset into patient-disjoint splits and nested training subsets.

The array functions are pure and seeded with `np.random.default_rng`. Row arguments
index into per-exam arrays of the whole `ExamSet` (`patient_ids`, `labels`):
`patient_ids[rows]` are the patients of `rows`.

- `carve_patients`: validation and test patients first, with their own seed.
- `pool_order`: the training pool as one seeded permutation of its patients.
- `nested_subset`: a prefix of whole patients, so every smaller subset is inside
  every larger one.
- `few_shot_subset`: k positives per class, nested in k.

`prepare_splits` composes them for a `DataConfig`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from scaling.config import LEADS_12, DataConfig
from scaling.data.dataset import DataError, ExamSet, ReadOptions, Split
from scaling.data.kinds import open_dataset


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
    """The splits of one run and the leads the model sees.

    `pool` is the whole training pool in its seeded order; `train` is its nested
    subset (or few-shot subset).
    """

    train: Split
    val: Split
    test: Split
    pool: Split
    leads: tuple[str, ...] = LEADS_12

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.exams.class_names

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_leads(self) -> int:
        return len(self.leads)


def prepare_splits(cfg: DataConfig) -> Splits:
    """Read the dataset of `cfg` and cut it into train / val / test (by patient) and pool.

    A fixed split in `info["split"]` (PTB-XL folds) wins unless `cfg.given_split` is off;
    else `cfg.test_path` is the test set and only validation is carved; else both are
    carved by `cfg.split_seed`.
    """
    if cfg.shots > 0 and cfg.subset_size > 0:
        raise DataError(f"set subset_size ({cfg.subset_size}) or shots ({cfg.shots}), not both")

    options = ReadOptions(cfg.label_level, cfg.ptbxl_records, cfg.source_rate, cfg.nan_policy)

    def read(path: str) -> ExamSet:
        return open_dataset(cfg.kind, path, classes=cfg.classes, options=options)

    exams = read(cfg.path)
    test_exams = exams
    if cfg.given_split and "split" in exams.info.columns:
        split = exams.info["split"].to_numpy()
        unknown = set(np.unique(split.astype(str))) - {"train", "val", "test"}
        if unknown:
            raise DataError(
                f"{exams.source}: info['split'] holds {sorted(unknown)}, "
                "expected 'train', 'val' or 'test'"
            )
        train, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    elif cfg.test_path:
        test_exams = read(cfg.test_path)
        _check_same_layout(exams, test_exams)
        train, val, _ = carve_patients(exams.patient_ids, cfg.val_fraction, 0.0, cfg.split_seed)
        test = np.arange(len(test_exams))
    else:
        train, val, test = carve_patients(
            exams.patient_ids, cfg.val_fraction, cfg.test_fraction, cfg.split_seed
        )
    for name, rows in (("train", train), ("val", val), ("test", test)):
        if len(rows) == 0:
            warnings.warn(f"{exams.source}: the {name} split is empty", stacklevel=2)
    pool = pool_order(train, exams.patient_ids, cfg.data_seed)
    if cfg.shots > 0:
        subset = few_shot_subset(
            pool, exams.labels, cfg.shots, cfg.data_seed, class_names=exams.class_names
        )
    elif cfg.subset_size > 0:
        subset = nested_subset(pool, exams.patient_ids, cfg.subset_size)
    else:
        subset = pool
    return Splits(
        train=Split(exams, subset),
        val=Split(exams, val),
        test=Split(test_exams, test),
        pool=Split(exams, pool),
        leads=cfg.leads,
    )


def _check_same_layout(exams: ExamSet, test: ExamSet) -> None:
    if test.class_names != exams.class_names or test.lead_names != exams.lead_names:
        raise DataError(
            f"{test.source}: the test set has classes {test.class_names} and leads "
            f"{test.lead_names}; the training set has {exams.class_names} and {exams.lead_names}"
        )
