"""A run's data from its config: the one place where `DataConfig` meets the data layer.

- `open_splits`: read the run's dataset (and separate test set) and cut its splits.
- `preprocessing`: the run's `Preprocessing`, which the loader applies to every batch.
- `preflight`: before a sweep starts, open every dataset its runs read the way their
  workers will. Bad data then fails once, on the driver, with the reader's message naming
  the file and the field, before any run directory is written. Datasets of up to
  `SCAN_EXAMS` exams are also read whole, so NaN samples are found now; bigger ones are
  checked batch by batch as workers read them (a run then fails with the same message).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from scaling.config import DataConfig
from scaling.data.code import list_ids
from scaling.data.dataset import DataError, ExamSet, ReadOptions
from scaling.data.kinds import open_dataset
from scaling.data.preprocess import Preprocessing
from scaling.data.subsets import Splits, prepare_splits

SCAN_EXAMS = 20_000
_BLOCK = 256


def open_splits(d: DataConfig) -> Splits:
    """The splits of a run with data config `d`, cut exactly as its worker cuts them."""
    options = ReadOptions(d.label_level, d.ptbxl_records, d.source_rate, d.nan_policy)

    def read(path: str) -> ExamSet:
        return open_dataset(d.kind, path, classes=d.classes, options=options)

    return prepare_splits(
        read(d.path),
        read(d.test_path) if d.test_path else None,
        given_split=d.given_split,
        val_fraction=d.val_fraction,
        test_fraction=d.test_fraction,
        split_seed=d.split_seed,
        data_seed=d.data_seed,
        subset_size=d.subset_size,
        shots=d.shots,
    )


def preprocessing(d: DataConfig) -> Preprocessing:
    """How every batch of a run with data config `d` is prepared for the model."""
    return Preprocessing(
        d.sample_rate, d.length, tuple(d.leads), d.highpass_hz, d.notch_hz, d.scale
    )


def preflight(configs: Iterable[DataConfig]) -> None:
    """Raise the first `DataError` (or `ValueError`) any of these data configs would meet."""
    largest: dict[DataConfig, list[DataConfig]] = {}
    for d in configs:
        source = dataclasses.replace(d, subset_size=0, shots=0, data_seed=0)
        largest.setdefault(source, []).append(d)
    for source, group in largest.items():
        biggest = max(group, key=lambda d: (d.subset_size == 0, d.subset_size))
        picks = {biggest, max(group, key=lambda d: d.shots)}
        for d in picks:
            splits = open_splits(d)
        if source.nan_policy == "fail":
            for exams in {id(s.exams): s.exams for s in (splits.pool, splits.test)}.values():
                if len(exams) <= SCAN_EXAMS:
                    _read_all(exams)


def _read_all(exams: ExamSet) -> None:
    """Read every signal once; a non-finite sample is a `DataError` naming the exams."""
    for start in range(0, len(exams), _BLOCK):
        rows = np.arange(start, min(start + _BLOCK, len(exams)))
        x = exams.read(rows)
        bad = ~np.isfinite(x).all(axis=tuple(range(1, x.ndim)))
        if bad.any():
            raise DataError(
                f"{exams.source}: NaN/inf samples in the signals of exam ids "
                f"{list_ids(exams.exam_ids[rows[bad]])} (nan_policy='fail'); "
                "`scaling data check` lists them all, nan_policy='exclude' drops them"
            )
