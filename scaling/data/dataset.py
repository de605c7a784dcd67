"""The one interface every dataset reader yields: an `ExamSet`, and `Split`s of it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from scaling.errors import ScalingError


class DataError(ScalingError):
    """Bad input data; the message names the file, the field and what was expected."""


class NonFiniteSignals(DataError):
    """Signals read for a batch hold NaN/inf: those of `exam_ids`, in `files` (one each)."""

    def __init__(self, message: str, exam_ids: np.ndarray, files: list[str]) -> None:
        super().__init__(message)
        self.exam_ids, self.files = exam_ids, files


@dataclass(frozen=True)
class ReadOptions:
    """What a config tells a reader beyond the path; each kind uses the fields it knows."""

    label_level: str = "superdiagnostic"  # PTB-XL: which statements are the classes
    ptbxl_records: int = 500  # PTB-XL: records500/ or records100/
    source_rate: float = 400.0  # CODE: its files carry no sample rate
    nan_policy: str = "fail"  # CODE: "exclude" scans every tracing and drops NaN/inf exams


class Problems:
    """Where a reader reports what is wrong with its input.

    Reading for a run (the default) raises a `DataError` at the first `error` and turns
    each `exclusion` (exams left out, the rest usable) into a warning. Collecting
    (`scaling data check`) records both and the reader goes on wherever it can.
    """

    def __init__(self, collect: bool = False) -> None:
        self.collect = collect
        self.found: list[str] = []

    def error(self, message: str) -> None:
        """Something is broken; a reader that goes on (collecting) leaves the broken part out."""
        if not self.collect:
            raise DataError(message)
        self.found.append(message)

    def exclusion(self, message: str) -> None:
        """Some exams are left out and the rest are usable."""
        if self.collect:
            self.found.append(message)
        else:
            warnings.warn(message, stacklevel=3)


class SignalReader(Protocol):
    """Reads raw signals by row of an `ExamSet`."""

    def read(self, rows: np.ndarray) -> np.ndarray:
        """float32 (len(rows), samples, leads) at the set's sample rate, in `rows` order."""
        ...


@dataclass(frozen=True, eq=False)
class ExamSet:
    """A dataset's metadata in memory; its signals stay on disk until read by row.

    Row i of every array describes the same exam. `info` holds per-exam extras
    (age, is_male, fold, ...) with the same row order.
    """

    exam_ids: np.ndarray  # (N,)
    patient_ids: np.ndarray  # (N,)
    labels: np.ndarray  # (N, C) float32 in {0, 1}
    class_names: tuple[str, ...]
    sample_rate: float
    lead_names: tuple[str, ...]
    reader: SignalReader
    info: pd.DataFrame
    source: str = ""  # path it was read from, for messages
    labels_from: str = ""  # the file of the labels, if one (for messages about classes)

    def __len__(self) -> int:
        return len(self.exam_ids)

    def read(self, rows: np.ndarray) -> np.ndarray:
        return self.reader.read(np.asarray(rows, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class Split:
    """Some rows of an `ExamSet`, in a meaningful order (e.g. the nested-subset prefix)."""

    exams: ExamSet
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> np.ndarray:
        return self.exams.labels[self.rows]

    @property
    def patients(self) -> np.ndarray:
        return self.exams.patient_ids[self.rows]
