"""Patient splits, the seeded training pool, nested and few-shot subsets (property tests)."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scaling.config import CODE15_CLASSES, LEADS_8, DataConfig
from scaling.data import DataError, write_code_dataset
from scaling.data.subsets import (
    carve_patients,
    few_shot_subset,
    nested_subset,
    pool_order,
)
from scaling.run_data import open_splits

FAST = settings(deadline=None, max_examples=60)


@st.composite
def cohorts(draw, min_patients: int = 1, max_patients: int = 60):
    """Per-exam patient ids: each patient has 1-6 exams, rows in shuffled order."""
    counts = draw(st.lists(st.integers(1, 6), min_size=min_patients, max_size=max_patients))
    ids = np.array(draw(st.permutations(range(1000, 1000 + len(counts)))))
    patient_ids = np.repeat(ids, counts)
    order = np.random.default_rng(draw(st.integers(0, 2**16))).permutation(len(patient_ids))
    return patient_ids[order]


def patients_of(rows, patient_ids) -> set:
    return set(patient_ids[rows].tolist())


@FAST
@given(cohorts(min_patients=3), st.integers(0, 2**32 - 1), st.floats(0, 0.3), st.floats(0, 0.3))
def test_carved_splits_are_patient_disjoint_and_cover_every_row(pids, seed, val, test):
    train, val_rows, test_rows = carve_patients(pids, val, test, seed)
    assert sorted(np.concatenate([train, val_rows, test_rows]).tolist()) == list(range(len(pids)))
    groups = [patients_of(r, pids) for r in (train, val_rows, test_rows)]
    assert not groups[0] & groups[1] and not groups[0] & groups[2] and not groups[1] & groups[2]
    assert len(train) > 0
    assert (len(val_rows) > 0) == (val > 0) and (len(test_rows) > 0) == (test > 0)


@FAST
@given(cohorts(min_patients=40), st.integers(0, 2**32 - 2))
def test_carving_is_deterministic_and_seed_dependent(pids, seed):
    first = carve_patients(pids, 0.2, 0.2, seed)
    again = carve_patients(pids, 0.2, 0.2, seed)
    other = carve_patients(pids, 0.2, 0.2, seed + 1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_carving_rejects_fractions_leaving_no_training_patient():
    with pytest.raises(ValueError, match="sum to < 1"):
        carve_patients(np.arange(10), 0.5, 0.5, 0)
    with pytest.raises(ValueError, match="2 patients are too few"):
        carve_patients(np.array([1, 1, 2]), 0.1, 0.1, 0)


@FAST
@given(cohorts(), st.integers(0, 2**32 - 1))
def test_pool_order_keeps_patients_adjacent_and_is_a_permutation(pids, seed):
    rows = np.flatnonzero(np.arange(len(pids)) % 3 != 0)  # some subset of rows as the pool
    assume(len(rows) > 0)
    ordered = pool_order(rows, pids, seed)
    assert sorted(ordered.tolist()) == rows.tolist()
    runs = pids[ordered][1:] != pids[ordered][:-1]
    assert runs.sum() + 1 == len(np.unique(pids[rows]))  # one run per patient
    assert np.array_equal(ordered, pool_order(rows, pids, seed))


@FAST
@given(cohorts(min_patients=12), st.integers(0, 2**32 - 2))
def test_pool_order_differs_between_data_seeds(pids, seed):
    rows = np.arange(len(pids))
    assert not np.array_equal(pool_order(rows, pids, seed), pool_order(rows, pids, seed + 1))


@FAST
@given(cohorts(), st.integers(0, 2**32 - 1), st.data())
def test_nested_subsets_are_nested_whole_patient_prefixes(pids, seed, data):
    pool = pool_order(np.arange(len(pids)), pids, seed)
    n = data.draw(st.integers(1, len(pool)), label="n")
    m = data.draw(st.integers(n, len(pool)), label="m")
    small, large = nested_subset(pool, pids, n), nested_subset(pool, pids, m)
    assert np.array_equal(large[: len(small)], small)  # a prefix, so a subset
    assert set(small.tolist()) <= set(large.tolist())
    most = np.unique(pids, return_counts=True)[1].max()
    assert n <= len(small) < n + most
    for subset in (small, large):  # whole patients only
        chosen = np.isin(pids, pids[subset])
        assert chosen.sum() == len(subset)


@FAST
@given(cohorts(), st.integers(0, 2**32 - 1), st.integers(1, 50))
def test_a_request_larger_than_the_pool_names_the_pool_size(pids, seed, extra):
    pool = pool_order(np.arange(len(pids)), pids, seed)
    n_patients = len(np.unique(pids))
    with pytest.raises(ValueError, match=f"pool of {len(pool)} exams from {n_patients} patients"):
        nested_subset(pool, pids, len(pool) + extra)


def test_nested_subset_rejects_rows_with_split_patients():
    pids = np.array([1, 2, 1])
    with pytest.raises(ValueError, match="adjacent"):
        nested_subset(np.arange(3), pids, 2)


@st.composite
def labelled(draw):
    """Rows and multi-labels (n, C): some classes common, some rare."""
    n = draw(st.integers(5, 120))
    c = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    prevalence = rng.uniform(0.02, 0.5, c)
    labels = (rng.random((n, c)) < prevalence).astype(np.float32)
    rows = np.sort(rng.choice(n, size=rng.integers(1, n + 1), replace=False))
    return rows, labels


@FAST
@given(labelled(), st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_few_shot_subsets_are_nested_in_k_and_hold_k_positives(data, k1, k2, seed):
    rows, labels = data
    k, k_more = sorted((k1, k2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = few_shot_subset(rows, labels, k, seed)
        large = few_shot_subset(rows, labels, k_more, seed)
        again = few_shot_subset(rows, labels, k, seed)
    assert np.array_equal(large[: len(small)], small)
    assert len(np.unique(small)) == len(small) and set(small.tolist()) <= set(rows.tolist())
    available = labels[rows].sum(axis=0)
    assert (labels[small].sum(axis=0) >= np.minimum(k, available)).all()
    assert np.array_equal(small, again)


def test_few_shot_counts_a_multi_label_exam_for_each_class():
    labels = np.array([[1, 1], [1, 0], [0, 1], [1, 1]], np.float32)
    subset = few_shot_subset(np.arange(4), labels, 1, seed=0)
    assert labels[subset].sum(axis=0).min() >= 1
    assert len(subset) <= 2


def test_few_shot_warns_for_classes_short_of_k_and_takes_all_they_have():
    labels = np.array([[1, 0], [1, 0], [1, 1], [1, 0], [1, 0]], np.float32)
    with pytest.warns(UserWarning, match=r"fewer than 3 positives for class\(es\) AF \(1\)"):
        subset = few_shot_subset(np.arange(5), labels, 3, seed=1, class_names=("SB", "AF"))
    assert 2 in subset and labels[subset, 0].sum() >= 3


def test_few_shot_differs_between_seeds():
    labels = (np.random.default_rng(0).random((400, 3)) < 0.3).astype(np.float32)
    rows = np.arange(400)
    assert not np.array_equal(
        few_shot_subset(rows, labels, 5, seed=0), few_shot_subset(rows, labels, 5, seed=1)
    )


# ---------------------------------------------------------------------------
# a run's splits (open_splits -> prepare_splits) on real files


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("splits")
    return write_code_dataset(path, n_exams=120, n_patients=70, length=64, seed=2)


def test_open_splits_carves_patients_and_nests_the_training_subset(code_dir):
    cfg = DataConfig(path=str(code_dir), length=64, leads=LEADS_8, val_fraction=0.2)
    whole = open_splits(cfg)
    assert (whole.n_classes, whole.class_names) == (6, CODE15_CLASSES)
    assert np.array_equal(whole.train.rows, whole.pool.rows)
    groups = [set(s.patients.tolist()) for s in (whole.pool, whole.val, whole.test)]
    assert not groups[0] & groups[1] and not groups[0] & groups[2] and not groups[1] & groups[2]
    assert len(whole.pool) + len(whole.val) + len(whole.test) == 120
    sizes = [len(open_splits(replace(cfg, subset_size=n)).train) for n in (10, 30, 60)]
    assert sizes[0] >= 10 and sizes == sorted(sizes)
    small = open_splits(replace(cfg, subset_size=30))
    assert np.array_equal(small.train.rows, whole.pool.rows[: len(small.train)])
    assert np.array_equal(small.val.rows, whole.val.rows)
    other = open_splits(replace(cfg, data_seed=1))
    assert not np.array_equal(other.pool.rows, whole.pool.rows)
    assert np.array_equal(other.test.rows, whole.test.rows)  # split_seed alone picks val/test


def test_open_splits_few_shot_and_its_errors(code_dir):
    cfg = DataConfig(path=str(code_dir), shots=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rare classes may have fewer than 2 positives
        splits = open_splits(cfg)
    assert set(splits.train.rows.tolist()) <= set(splits.pool.rows.tolist())
    assert (splits.train.labels.sum(axis=0) >= np.minimum(2, splits.pool.labels.sum(axis=0))).all()
    with pytest.raises(ValueError, match="not both"):
        open_splits(replace(cfg, subset_size=10))
    with pytest.raises(ValueError, match="larger than the training pool"):
        open_splits(replace(cfg, shots=0, subset_size=10_000))


def test_open_splits_takes_a_separate_test_set(code_dir, tmp_path):
    test_dir = write_code_dataset(tmp_path, n_exams=15, n_patients=9, length=64, seed=8)
    cfg = DataConfig(path=str(code_dir), test_path=str(test_dir), val_fraction=0.25)
    splits = open_splits(cfg)
    assert splits.test.exams.source == str(test_dir) and len(splits.test) == 15
    assert len(splits.pool) + len(splits.val) == 120
    other = write_code_dataset(tmp_path / "other", n_exams=5, n_patients=5, classes=("AF",))
    with pytest.raises(DataError, match="the test set has classes"):
        open_splits(replace(cfg, test_path=str(other), classes=()))


REAL_PTBXL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptbxl_sample"


@pytest.mark.skipif(not REAL_PTBXL.is_dir(), reason="real PTB-XL sample not in ../shared/data")
@pytest.mark.filterwarnings("ignore:.*have no 500 Hz files")
def test_open_splits_uses_the_fixed_ptbxl_folds():
    cfg = DataConfig(kind="ptbxl", path=str(REAL_PTBXL), classes=(), sample_rate=100.0, length=1000)
    with pytest.warns(UserWarning, match="the test split is empty"):  # the sample has no fold 10
        splits = open_splits(cfg)
    split = splits.pool.exams.info["split"].to_numpy()
    assert (split[splits.pool.rows] == "train").all() and (split[splits.val.rows] == "val").all()
    assert len(splits.pool) + len(splits.val) == len(splits.pool.exams)
    assert splits.class_names == splits.pool.exams.class_names and splits.n_classes > 1
