"""Before a sweep starts: open every dataset its runs read, the way their workers will.

Bad data then fails once, on the driver, with the reader's message naming the file and
the field, before any run directory is written. Datasets of up to `SCAN_EXAMS` exams are
also read whole, so NaN samples are found now; bigger ones are checked batch by batch as
workers read them (a run then fails with the same message).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from scaling.config import DataConfig
from scaling.data.code import list_ids
from scaling.data.dataset import DataError, ExamSet
from scaling.data.subsets import prepare_splits

SCAN_EXAMS = 20_000
_BLOCK = 256


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
            splits = prepare_splits(d)
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
