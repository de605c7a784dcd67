"""Batches: the seeded, resumable training stream, in-order passes, preprocessing, threads."""

from __future__ import annotations

import gc
import threading
from itertools import islice

import h5py
import numpy as np
import pytest

from scaling.config import LEADS_8, DataConfig
from scaling.data import DataError, Split, iterate_batches, read_code, train_stream
from scaling.data.preprocess import Preprocessing, preprocess
from scaling.data.synthetic import write_code_dataset
from scaling.run_data import preprocessing

LENGTH = 512


@pytest.fixture(scope="module")
def exams(tmp_path_factory):
    path = tmp_path_factory.mktemp("loader")
    write_code_dataset(path, n_exams=60, n_patients=40, length=LENGTH, seed=5)
    return read_code(path)


@pytest.fixture(scope="module")
def prep() -> Preprocessing:
    return preprocessing(DataConfig(length=LENGTH))


def split_of(exams, rows) -> Split:
    return Split(exams, np.asarray(rows, dtype=np.int64))


def expected_rows(rows: np.ndarray, batch_size: int, seed: int, steps: int) -> list[np.ndarray]:
    """The documented stream: epochs permuted by default_rng([seed, e]), cut into batches."""
    epochs = -(-steps * batch_size // len(rows)) + 1
    stream = np.concatenate(
        [rows[np.random.default_rng([seed, e]).permutation(len(rows))] for e in range(epochs)]
    )
    return [stream[k * batch_size : (k + 1) * batch_size] for k in range(steps)]


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("scaling-prefetch")]


def test_train_stream_follows_the_documented_order(exams, prep):
    split = split_of(exams, np.arange(3, 50))
    batches = list(islice(train_stream(split, prep, 16, seed=7), 6))  # wraps into epoch 2
    for (x, y), rows in zip(batches, expected_rows(split.rows, 16, 7, 6), strict=True):
        assert x.shape == (16, LENGTH, 12) and x.dtype == np.float32
        np.testing.assert_array_equal(y, exams.labels[rows])
        np.testing.assert_array_equal(x, exams.read(rows))


def test_train_stream_is_deterministic_and_seeded(exams, prep):
    split = split_of(exams, np.arange(60))
    first = [y for _, y in islice(train_stream(split, prep, 8, seed=1), 7)]
    again = [y for _, y in islice(train_stream(split, prep, 8, seed=1, prefetch=0), 7)]
    other = [y for _, y in islice(train_stream(split, prep, 8, seed=2), 7)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_a_split_smaller_than_the_batch_still_gives_full_batches(exams, prep):
    split = split_of(exams, [4, 9, 21])
    batches = list(islice(train_stream(split, prep, 8, seed=0), 3))
    ids = [exams.exam_ids[rows] for rows in expected_rows(split.rows, 8, 0, 3)]
    for (x, _), want in zip(batches, ids, strict=True):
        assert x.shape[0] == 8
        assert set(want.tolist()) == set(exams.exam_ids[[4, 9, 21]].tolist())
    x0, _ = batches[0]
    np.testing.assert_array_equal(x0, exams.read(expected_rows(split.rows, 8, 0, 1)[0]))


def test_start_step_resumes_at_the_same_batch(exams, prep):
    split = split_of(exams, np.arange(0, 60, 2))
    full = list(islice(train_stream(split, prep, 7, seed=3), 12))
    resumed = list(islice(train_stream(split, prep, 7, seed=3, start_step=5), 7))
    for (x, y), (xr, yr) in zip(full[5:], resumed, strict=True):
        np.testing.assert_array_equal(x, xr)
        np.testing.assert_array_equal(y, yr)


def test_each_epoch_is_reshuffled(exams, prep):
    split = split_of(exams, np.arange(10))
    (x1, _), (x2, _) = islice(train_stream(split, prep, 10, seed=0), 2)  # one epoch per batch
    assert not np.array_equal(x1, x2)
    order = np.lexsort(x1[:, :, 0].T)  # the same exams, in another order
    np.testing.assert_array_equal(x1[order], x2[np.lexsort(x2[:, :, 0].T)])


def test_iterate_batches_covers_every_row_once_in_order(exams, prep):
    split = split_of(exams, np.random.default_rng(0).permutation(60)[:45])
    batches = list(iterate_batches(split, prep, 16))
    assert [len(x) for x, _ in batches] == [16, 16, 13]
    x = np.concatenate([x for x, _ in batches])
    y = np.concatenate([y for _, y in batches])
    np.testing.assert_array_equal(x, exams.read(split.rows))
    np.testing.assert_array_equal(y, exams.labels[split.rows])


def test_batches_are_preprocessed_for_the_config(exams, prep):
    small = Preprocessing(sample_rate=200.0, length=300, leads=LEADS_8, highpass_hz=0.5, scale=2.0)
    split = split_of(exams, np.arange(20))
    x, y = next(iterate_batches(split, small, 20))
    assert x.shape == (20, 300, 8) and y.shape == (20, 6)
    want = preprocess(
        exams.read(split.rows),
        400.0,
        exams.lead_names,
        sample_rate=200.0,
        length=300,
        leads=LEADS_8,
        highpass_hz=0.5,
        scale=2.0,
    )
    np.testing.assert_allclose(x, want, rtol=1e-6)
    xt, _ = next(train_stream(split, small, 4, seed=0))
    assert xt.shape == (4, 300, 8)


def test_closing_or_dropping_a_stream_stops_its_thread(exams, prep):
    split = split_of(exams, np.arange(60))
    before = len(prefetch_threads())
    stream = train_stream(split, prep, 8, seed=0, prefetch=3)
    next(stream)
    assert len(prefetch_threads()) > before
    stream.close()
    assert len(prefetch_threads()) == before

    stream = train_stream(split, prep, 8, seed=0)
    next(stream)
    del stream
    gc.collect()
    assert len(prefetch_threads()) == before

    for _ in iterate_batches(split, prep, 4):
        break
    gc.collect()
    assert len(prefetch_threads()) == before


def test_read_errors_reach_the_consumer(tmp_path, prep):
    write_code_dataset(tmp_path, n_exams=12, n_patients=12, length=LENGTH, parts=1, seed=0)
    with h5py.File(tmp_path / "exams_part0.hdf5", "r+") as f:
        f["tracings"][:, 10, 0] = np.nan
    split = split_of(read_code(tmp_path), np.arange(12))
    before = len(prefetch_threads())
    with pytest.raises(DataError, match=r"NaN/inf samples in exams_part0\.hdf5 for exam ids"):
        next(train_stream(split, prep, 4, seed=0))
    with pytest.raises(DataError, match=r"NaN/inf samples in exams_part0\.hdf5 for exam ids"):
        list(iterate_batches(split, prep, 4))
    assert len(prefetch_threads()) == before


def test_bad_arguments(exams, prep):
    with pytest.raises(ValueError, match="empty split"):
        train_stream(split_of(exams, []), prep, 4, seed=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        train_stream(split_of(exams, [1]), prep, 0, seed=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        iterate_batches(split_of(exams, [1]), prep, 0)
