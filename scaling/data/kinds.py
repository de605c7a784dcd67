"""Dataset kinds: one reader module per on-disk layout, named in `config.DATASET_KINDS`.

The contract of a kind's module (see `code.py`, `ptbxl.py`, `cpsc.py`):

- `LAYOUT`: one line saying what the kind expects on disk, for messages;
- `looks_like(path) -> bool`: whether a folder holds this kind (`data check --kind auto`);
- `read(path, options, problems) -> ExamSet`: every exam and *every* class the dataset
  has, signals left on disk; a malformed input raises `DataError` naming the file and the
  field, or, where the reader can go on without the broken part, goes to `problems`
  (`Problems`: raised when reading for a run, listed by `scaling data check`).

Everything else happens once, here, for every kind: choosing the classes a config asks for
and the checks every `ExamSet` must pass. Adding a kind is one module and one line in
`DATASET_KINDS` (`tests/test_kinds.py` adds a toy kind that way and trains on it).
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np

from scaling.config import DATASET_KINDS
from scaling.data.dataset import DataError, ExamSet, Problems, ReadOptions


def kind_module(kind: str) -> ModuleType:
    """The module that reads `kind`."""
    if kind not in DATASET_KINDS:
        raise DataError(
            f"unknown dataset kind {kind!r}; expected one of {', '.join(DATASET_KINDS)}"
        )
    return importlib.import_module(DATASET_KINDS[kind])


def detect_kind(path: Path) -> str:
    """The kind of the dataset in folder `path`: the first whose module recognises it."""
    for kind in DATASET_KINDS:
        if kind_module(kind).looks_like(path):
            return kind
    expected = "; ".join(f"{k}: {kind_module(k).LAYOUT}" for k in DATASET_KINDS)
    raise DataError(f"{path}: cannot tell the dataset kind; expected one of {expected}")


def open_dataset(
    kind: str,
    path: str,
    *,
    classes: tuple[str, ...] = (),
    options: ReadOptions | None = None,
    problems: Problems | None = None,
) -> ExamSet:
    """The `ExamSet` of the dataset at `path`: with `classes`, exactly those in that order,
    else all of the dataset's. `problems` collecting: the reader lists what it can go on
    without instead of raising (`scaling data check`)."""
    exams = kind_module(kind).read(Path(path), options or ReadOptions(), problems or Problems())
    check_examset(exams)
    return select_classes(exams, tuple(classes))


def check_examset(exams: ExamSet) -> None:
    """What every reader must deliver: one row per exam in every array, unique exam ids and
    class names, 0/1 labels."""
    n = len(exams.exam_ids)
    shapes = {
        "patient_ids": len(exams.patient_ids),
        "labels": len(exams.labels),
        "info": len(exams.info),
    }
    wrong = {k: v for k, v in shapes.items() if v != n}
    if wrong or exams.labels.ndim != 2 or exams.labels.shape[1] != len(exams.class_names):
        raise DataError(
            f"{exams.source}: the reader gave {n} exam ids but rows {wrong} and labels of shape "
            f"{exams.labels.shape} for {len(exams.class_names)} classes (a reader bug)"
        )
    if len(set(exams.class_names)) != len(exams.class_names):
        raise DataError(f"{exams.source}: class names repeat: {', '.join(exams.class_names)}")
    if len(np.unique(exams.exam_ids)) != n:
        raise DataError(f"{exams.source}: exam ids repeat")
    if not np.isin(exams.labels, (0, 1)).all():
        raise DataError(f"{exams.source}: labels other than 0/1")


def select_classes(exams: ExamSet, classes: tuple[str, ...]) -> ExamSet:
    """The same exams with only `classes` as labels, in that order (all when empty)."""
    if not classes:
        if not exams.class_names:
            where = exams.labels_from or exams.source
            raise DataError(f"{where}: no class columns (no column of 0/1 labels)")
        return exams
    if classes == exams.class_names:
        return exams
    _check_named(exams, classes)
    columns = [exams.class_names.index(c) for c in classes]
    return replace(exams, labels=exams.labels[:, columns], class_names=classes)


def _check_named(exams: ExamSet, classes: tuple[str, ...]) -> None:
    """A `DataError` naming the labels' file and the first of `classes` the labels lack."""
    where = exams.labels_from or exams.source
    for c in classes:
        if c in exams.class_names:
            continue
        if c in exams.info.columns:  # there, but not as labels: say what it holds instead
            bad = exams.info[c][~exams.info[c].isin((0, 1, True, False)) | exams.info[c].isna()]
            shown = ", ".join(map(str, bad.head(3).tolist()))
            raise DataError(
                f"{where}: class column '{c}' must hold 0/1, found {len(bad)} other "
                f"value(s) (e.g. {shown})"
            )
        missing = [m for m in classes if m not in exams.class_names]
        others = ", ".join(map(str, exams.info.columns))
        raise DataError(
            f"{where}: class column(s) {', '.join(missing)} not found; the dataset's classes "
            f"are {', '.join(exams.class_names) or '(none)'}"
            + (f" (other columns: {others})" if others else "")
        )
