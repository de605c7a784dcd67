"""Streaming preprocessed batches of a `Split`.

`iterate_batches` makes one in-order pass (evaluation); `train_stream` is the
endless, seeded, resumable stream of full training batches. Both read and
preprocess in background threads that keep `prefetch` batches ready; closing
the iterator early (or dropping it) stops and joins those threads.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import numpy as np

from scaling.data.dataset import ExamSet, Split
from scaling.data.preprocess import Preprocessing

Batch = tuple[np.ndarray, np.ndarray]
THREAD_NAME = "scaling-prefetch"


# ---------------------------------------------------------------------------
# Batches


def load_batch(exams: ExamSet, rows: np.ndarray, prep: Preprocessing | None) -> Batch:
    """(x, y) for `rows`: x float32 as `prep` makes it (as read when None: features),
    y float32 (B, C)."""
    x = exams.read(rows)
    if prep is not None:
        x = prep.apply(x, exams.sample_rate, exams.lead_names)
    return x, exams.labels[rows].astype(np.float32)


def iterate_batches(
    split: Split, prep: Preprocessing | None, batch_size: int, *, prefetch: int = 2
) -> Iterator[Batch]:
    """One in-order pass over the split; the last batch may be short."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    chunks = (split.rows[i : i + batch_size] for i in range(0, len(split.rows), batch_size))
    return _prefetched(lambda rows: load_batch(split.exams, rows, prep), chunks, prefetch)


def train_stream(
    split: Split,
    prep: Preprocessing | None,
    batch_size: int,
    *,
    seed: int,
    start_step: int = 0,
    prefetch: int = 2,
) -> Iterator[Batch]:
    """Endless full batches: batch k is stream[k*B:(k+1)*B] of the concatenated epochs.

    Epoch e is the split's rows permuted by `np.random.default_rng([seed, e])`.
    `start_step` starts at batch `start_step` without reading the ones before.
    """
    if len(split) == 0:
        raise ValueError("cannot stream batches from an empty split")
    if batch_size < 1 or seed < 0 or start_step < 0:
        raise ValueError(
            "batch_size must be >= 1, seed and start_step >= 0; got "
            f"{batch_size}, {seed}, {start_step}"
        )
    positions = stream_positions(len(split), batch_size, seed=seed, start_step=start_step)
    rows = (split.rows[p] for p in positions)
    return _prefetched(lambda r: load_batch(split.exams, r, prep), rows, prefetch)


def stream_positions(
    n: int, batch_size: int, *, seed: int, start_step: int = 0
) -> Iterator[np.ndarray]:
    """Positions (into a split of `n` rows) of each training batch from `start_step` on."""
    epoch, offset = divmod(start_step * batch_size, n)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    while True:
        pieces, need = [], batch_size
        while need:
            piece = perm[offset : offset + need]
            pieces.append(piece)
            need -= len(piece)
            offset += len(piece)
            if offset == n:
                epoch, offset = epoch + 1, 0
                perm = np.random.default_rng([seed, epoch]).permutation(n)
        yield np.concatenate(pieces)


# ---------------------------------------------------------------------------
# Prefetching


def _prefetched(
    load: Callable[[np.ndarray], Batch], keys: Iterable[np.ndarray], prefetch: int
) -> Iterator[Batch]:
    """`load(key)` for each key, in order, with up to `prefetch` batches loading ahead."""
    if prefetch < 1:
        return (load(key) for key in keys)
    return _background(load, iter(keys), prefetch)


def _background(
    load: Callable[[np.ndarray], Batch], keys: Iterator[np.ndarray], prefetch: int
) -> Iterator[Batch]:
    """Worker threads (at most one per core) load batches ahead; closing this generator
    cancels what has not started and joins the threads."""
    workers = min(prefetch, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers, thread_name_prefix=THREAD_NAME) as pool:
        ahead = deque(pool.submit(load, key) for key in islice(keys, prefetch))
        try:
            while ahead:
                batch = ahead.popleft().result()
                for key in islice(keys, 1):
                    ahead.append(pool.submit(load, key))
                yield batch
        finally:
            for future in ahead:
                future.cancel()
