"""CODE-family datasets (CODE-II, CODE-15%): `exams.csv` plus HDF5 parts of tracings.

Layout: `exams.csv` has one row per exam (exam_id, patient_id, age, is_male, one 0/1
column per class, trace_file naming the part) and each `exams_part*.hdf5` holds
`tracings` float32 (exams, samples, 12) and `exam_id` (exams,). Rows of a part whose
exam_id is 0 are padding and ignored. Signals stay on disk: `CodeReader` reads the
rows a batch needs, part by part in file order, straight from the file with `pread`
where HDF5 stores rows raw (uncompressed float32), else through h5py.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from scaling.config import LEADS_12
from scaling.data.dataset import DataError, ExamSet, NonFiniteSignals, Problems, ReadOptions

TABLE = "exams.csv"
PART_GLOB = "exams_part*.hdf5"
LAYOUT = f"{TABLE} and {PART_GLOB} (CODE-II, CODE-15%)"
NAN_POLICIES = ("fail", "exclude")
# Columns of CODE tables that are never classes (used when classes are inferred).
METADATA_COLUMNS = frozenset(
    {
        "exam_id",
        "patient_id",
        "age",
        "is_male",
        "trace_file",
        "nn_predicted_age",
        "death",
        "timey",
        "date_exam",
    }
)
SCAN_BLOCK = 256  # exams per read when scanning a whole part


def list_ids(ids: np.ndarray, k: int = 5) -> str:
    """The first `k` ids for a message, with an ellipsis when there are more."""
    shown = ", ".join(str(i) for i in np.asarray(ids)[:k])
    return shown + (", ..." if len(ids) > k else "")


def _natural_key(path: Path) -> list:
    """Sort key putting exams_part2 before exams_part10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


# ---------------------------------------------------------------------------
# exams.csv


def is_binary(column: pd.Series) -> bool:
    """True when every value is 0/1 (or True/False) and none is missing."""
    if column.isna().any():
        return False
    if column.dtype == bool:
        return True
    return pd.api.types.is_numeric_dtype(column) and bool(column.isin((0, 1)).all())


def infer_classes(table: pd.DataFrame) -> tuple[str, ...]:
    """Every 0/1 column of a CODE table that is not known metadata, in table order."""
    return tuple(str(c) for c in table.columns if c not in METADATA_COLUMNS and is_binary(table[c]))


def read_table(folder: Path) -> pd.DataFrame:
    """`exams.csv` of a CODE folder, its ids validated."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (expected a CODE dataset with {TABLE})")
    path = folder / TABLE
    if not path.is_file():
        raise DataError(f"{path}: missing (a CODE dataset needs {TABLE} and {PART_GLOB})")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV table ({e})") from e
    for name in ("exam_id", "patient_id"):
        if name not in table.columns:
            raise DataError(
                f"{path}: no '{name}' column; columns are {', '.join(map(str, table.columns))}"
            )
    if table.empty:
        raise DataError(f"{path}: no exams (the table has a header but no rows)")
    if not pd.api.types.is_integer_dtype(table["exam_id"]):
        raise DataError(
            f"{path}: column 'exam_id' must hold integers, got {table['exam_id'].dtype}"
        )
    if table["patient_id"].isna().any():
        missing = table.loc[table["patient_id"].isna(), "exam_id"].to_numpy()
        raise DataError(
            f"{path}: column 'patient_id' is empty for {len(missing)} exam(s) "
            f"(exam ids {list_ids(missing)})"
        )
    duplicated = table["exam_id"][table["exam_id"].duplicated()].unique()
    if len(duplicated):
        raise DataError(
            f"{path}: {len(duplicated)} duplicate exam id(s) in 'exam_id' ({list_ids(duplicated)})"
        )
    return table


# ---------------------------------------------------------------------------
# HDF5 parts


@dataclass(frozen=True)
class Part:
    """One HDF5 part: its file, the exam id of each row and the samples per tracing."""

    file: Path
    exam_ids: np.ndarray
    samples: int


def find_parts(folder: Path, table: pd.DataFrame) -> list[Path]:
    """The HDF5 parts: `exams_part*.hdf5` plus any existing file that trace_file names."""
    files = set(folder.glob(PART_GLOB))
    if "trace_file" in table.columns:
        named = {folder / str(name) for name in table["trace_file"].dropna().unique()}
        files |= {f for f in named if f.is_file()}
    if not files:
        raise DataError(f"{folder}: no HDF5 parts ({PART_GLOB}) next to {TABLE}")
    return sorted(files, key=_natural_key)


def read_part(file: Path) -> Part:
    """Open a part and check its `tracings` and `exam_id` datasets (signals are not read)."""
    try:
        with h5py.File(file, "r") as f:
            tracings = f.get("tracings")
            if not isinstance(tracings, h5py.Dataset):
                raise DataError(
                    f"{file}: no dataset 'tracings' (expected float32 (exams, samples, 12))"
                )
            if tracings.ndim != 3 or tracings.shape[2] != len(LEADS_12):
                raise DataError(
                    f"{file}: 'tracings' has shape {tracings.shape}, "
                    f"expected (exams, samples, {len(LEADS_12)})"
                )
            if tracings.dtype.kind != "f":
                raise DataError(f"{file}: 'tracings' has dtype {tracings.dtype}, expected float32")
            ids = f.get("exam_id")
            if not isinstance(ids, h5py.Dataset) or ids.ndim != 1 or ids.dtype.kind not in "iu":
                raise DataError(f"{file}: no 1-D integer dataset 'exam_id' (one id per tracing)")
            if len(ids) != len(tracings):
                raise DataError(
                    f"{file}: 'exam_id' has {len(ids)} entries but 'tracings' has "
                    f"{len(tracings)} exams"
                )
            return Part(file, ids[:].astype(np.int64), int(tracings.shape[1]))
    except OSError as e:
        raise DataError(f"{file}: unreadable HDF5 file, truncated or corrupt? ({e})") from e


def scan_nonfinite(file: Path, block: int = SCAN_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a part's `tracings` holding NaN/inf, and how many bad samples each has.

    Reads the whole part, `block` exams at a time (memory stays bounded).
    """
    rows, counts = [], []
    try:
        with h5py.File(file, "r") as f:
            tracings = f["tracings"]
            for start in range(0, len(tracings), block):
                bad = ~np.isfinite(tracings[start : start + block])
                n_bad = bad.sum(axis=(1, 2))
                hit = np.flatnonzero(n_bad)
                rows.append(hit + start)
                counts.append(n_bad[hit])
    except OSError as e:
        raise DataError(f"{file}: unreadable HDF5 data, truncated or corrupt? ({e})") from e
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(counts).astype(np.int64)


@dataclass(frozen=True)
class Join:
    """Where each exam of the table lives: part and row (-1 where it has no tracing)."""

    part: np.ndarray  # (len(table),)
    row: np.ndarray  # (len(table),)
    orphans: np.ndarray  # exam ids with a tracing but no table row


def join(table: pd.DataFrame, parts: list[Part], source: Path) -> Join:
    """Locate every exam of the table in the parts by exam_id (id 0 is padding)."""
    ids = np.concatenate([p.exam_ids for p in parts])
    part = np.concatenate([np.full(len(p.exam_ids), i) for i, p in enumerate(parts)])
    row = np.concatenate([np.arange(len(p.exam_ids)) for p in parts])
    real = ids != 0
    ids, part, row = ids[real], part[real], row[real]
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = unique[counts > 1]
        files = sorted({parts[i].file.name for i in np.unique(part[np.isin(ids, dup)])})
        raise DataError(
            f"{source}: {len(dup)} exam id(s) appear in more than one tracing in "
            f"{', '.join(files)} ({list_ids(dup)})"
        )
    where = pd.Index(ids).get_indexer(table["exam_id"].to_numpy())
    found = where >= 0
    if "trace_file" in table.columns:
        named = table["trace_file"].astype(str).to_numpy()
        holder = np.array([p.file.name for p in parts])[part[where[found]]]
        wrong = named[found] != holder
        if wrong.any():
            bad = table["exam_id"].to_numpy()[found][wrong]
            raise DataError(
                f"{source / TABLE}: 'trace_file' names another part than the one holding "
                f"{wrong.sum()} exam(s) (exam ids {list_ids(bad)})"
            )
    orphans = np.setdiff1d(ids, table["exam_id"].to_numpy())
    return Join(
        part=np.where(found, part[where], -1),
        row=np.where(found, row[where], -1),
        orphans=orphans,
    )


# ---------------------------------------------------------------------------
# Reading signals


class CodeReader:
    """Reads tracings by ExamSet row from the right parts, in file order within each part.

    Parts are opened lazily, once per process; the reader pickles without them and
    reopens after unpickling (or after a fork). Every batch is checked for NaN/inf,
    which raise a `DataError` naming the file and the exam ids.
    """

    def __init__(
        self,
        files: tuple[str, ...],
        part: np.ndarray,
        row: np.ndarray,
        exam_ids: np.ndarray,
        samples: int,
    ):
        self.files = files
        self.samples = samples
        self.part = part
        self.row = row
        self.exam_ids = exam_ids
        self._open()

    def _open(self) -> None:
        self._pid = os.getpid()
        self._parts: dict[int, _H5Rows | _RawRows] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {k: getattr(self, k) for k in ("files", "part", "row", "exam_ids", "samples")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()

    def _rows_of(self, part: int) -> _H5Rows | _RawRows:
        with self._lock:
            if self._pid != os.getpid():
                self._open()
            if part not in self._parts:
                try:
                    self._parts[part] = open_rows(Path(self.files[part]))
                except OSError as e:
                    raise DataError(f"{self.files[part]}: cannot open HDF5 ({e})") from e
            return self._parts[part]

    def read(self, rows: np.ndarray) -> np.ndarray:
        """float32 (len(rows), samples, 12) in `rows` order."""
        rows = np.asarray(rows, dtype=np.int64)
        part, row = self.part[rows], self.row[rows]
        order = np.lexsort((row, part))
        out = np.empty((len(rows), self.samples, len(LEADS_12)), np.float32)
        for p in np.unique(part):
            at = order[part[order] == p]  # output positions, sorted by file row
            source = self._rows_of(int(p))
            try:
                source.read_into(row[at], out, at)
            except OSError as e:
                raise DataError(
                    f"{self.files[p]}: cannot read tracings of exam ids "
                    f"{list_ids(self.exam_ids[rows[at]])} ({e})"
                ) from e
        self._check_finite(out, rows, part)
        return out

    def _check_finite(self, x: np.ndarray, rows: np.ndarray, part: np.ndarray) -> None:
        if np.isfinite(x.sum()):  # one fast reduction; NaN/inf propagate
            return
        bad = ~np.isfinite(x).all(axis=(1, 2))
        if not bad.any():  # the sum overflowed; the samples are finite
            return
        files = ", ".join(sorted({Path(self.files[p]).name for p in np.unique(part[bad])}))
        raise NonFiniteSignals(
            f"{Path(self.files[0]).parent}: NaN/inf samples in {files} for exam ids "
            f"{list_ids(self.exam_ids[rows[bad]])} (nan_policy='fail'); "
            "`scaling data check` lists them all, nan_policy='exclude' drops them",
            self.exam_ids[rows[bad]],
            [self.files[p] for p in part[bad]],
        )


def open_rows(file: Path) -> _H5Rows | _RawRows:
    """The fastest way to read a part's rows: straight from the file where rows are
    stored raw (uncompressed native float32), else through h5py."""
    with h5py.File(file, "r") as f:
        tracings = f["tracings"]
        offsets = raw_row_offsets(tracings)
        row_bytes = tracings.dtype.itemsize * int(np.prod(tracings.shape[1:]))
    return _H5Rows(file) if offsets is None else _RawRows(file, offsets, row_bytes)


def raw_row_offsets(tracings: h5py.Dataset) -> np.ndarray | None:
    """Byte offset in the file of every row, as HDF5 lays them out, or None if rows are
    not stored raw (filters, a foreign dtype, partial-row chunks, unwritten chunks)."""
    plist = tracings.id.get_create_plist()
    if not hasattr(os, "preadv") or tracings.dtype != np.float32 or plist.get_nfilters():
        return None
    n = len(tracings)
    row_bytes = tracings.dtype.itemsize * int(np.prod(tracings.shape[1:]))
    r = np.arange(n, dtype=np.int64)
    if tracings.chunks is None:
        start = tracings.id.get_offset()
        return None if start is None else start + r * row_bytes
    k = tracings.chunks[0]
    if tuple(tracings.chunks[1:]) != tuple(tracings.shape[1:]):
        return None
    starts = np.full(-(-n // k), -1, np.int64)

    def note(chunk) -> None:
        starts[chunk.chunk_offset[0] // k] = chunk.byte_offset

    try:
        tracings.id.chunk_iter(note)
    except (AttributeError, NotImplementedError, RuntimeError):  # an HDF5 without it
        return None
    return None if (starts < 0).any() else starts[r // k] + (r % k) * row_bytes


class _RawRows:
    """Rows read with one `os.preadv` each at their HDF5 byte offsets: several times
    faster than h5py per row, and other threads run meanwhile (no GIL held)."""

    def __init__(self, file: Path, offsets: np.ndarray, row_bytes: int):
        self._io = open(file, "rb", buffering=0)  # noqa: SIM115 (kept open; closed on GC)
        self.offsets = offsets
        self.row_bytes = row_bytes

    def read_into(self, rows: np.ndarray, out: np.ndarray, at: np.ndarray) -> None:
        fd = self._io.fileno()
        for r, a in zip(rows.tolist(), at.tolist(), strict=True):
            if os.preadv(fd, [out[a]], int(self.offsets[r])) != self.row_bytes:
                raise OSError(f"short read at row {r}: the file is truncated")


class _H5Rows:
    """Rows read through h5py (any layout, compression or dtype), one slice per run."""

    def __init__(self, file: Path):
        self._file = h5py.File(file, "r")
        self.tracings = self._file["tracings"]

    def read_into(self, rows: np.ndarray, out: np.ndarray, at: np.ndarray) -> None:
        rows_, at_ = rows.tolist(), at.tolist()
        start = 0
        for stop in range(1, len(rows_) + 1):
            if stop < len(rows_) and rows_[stop] - rows_[stop - 1] <= 1:
                continue  # the run of adjacent rows goes on
            lo, hi = rows_[start], rows_[stop - 1]
            if stop - start == 1:
                out[at_[start]] = self.tracings[lo]
            else:
                out[at_[start:stop]] = self.tracings[lo : hi + 1][rows[start:stop] - lo]
            start = stop


# ---------------------------------------------------------------------------
# The dataset


def looks_like(path: Path) -> bool:
    return (path / TABLE).is_file()


def read(path: Path, options: ReadOptions, problems: Problems | None = None) -> ExamSet:
    """The dataset kind's reader (`scaling.data.kinds`)."""
    return read_code(
        path, source_rate=options.source_rate, nan_policy=options.nan_policy, problems=problems
    )


def read_code(
    path: str | Path,
    *,
    source_rate: float = 400.0,
    nan_policy: str = "fail",
    problems: Problems | None = None,
) -> ExamSet:
    """A CODE-family folder as an `ExamSet` (labels in memory, tracings on disk).

    Every 0/1 column that is not known metadata is a class. Exams in exams.csv without a
    tracing, and tracings without a row, are excluded with a warning. With nan_policy
    "fail" a batch holding NaN/inf raises at read time; "exclude" scans every tracing
    now (slow for big datasets) and drops those exams with a warning. `problems`
    collecting: an unreadable part, or one of another length, is reported and left out.
    """
    problems = problems or Problems()
    if nan_policy not in NAN_POLICIES:
        raise DataError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    folder = Path(path)
    table = read_table(folder)
    classes = infer_classes(table)
    parts = []
    for file in find_parts(folder, table):
        try:
            parts.append(read_part(file))
        except DataError as e:
            problems.error(str(e))
    lengths = Counter(p.samples for p in parts)
    if len(lengths) > 1:
        sizes = ", ".join(f"{p.file.name}: {p.samples}" for p in parts)
        problems.error(f"{folder}: parts hold tracings of different lengths ({sizes})")
        parts = [p for p in parts if p.samples == lengths.most_common(1)[0][0]]
    if not parts:
        raise DataError(f"{folder}: no readable HDF5 part")
    located = join(table, parts, folder)
    keep = located.part >= 0
    if not keep.all():
        missing = table["exam_id"].to_numpy()[~keep]
        problems.exclusion(
            f"{folder}: {len(missing)} exam(s) of {TABLE} have no tracing and are excluded "
            f"(exam ids {list_ids(missing, 20)})"
        )
    if len(located.orphans):
        problems.exclusion(
            f"{folder}: {len(located.orphans)} tracing(s) have no row in {TABLE} and are "
            f"ignored (exam ids {list_ids(located.orphans, 20)})"
        )
    if nan_policy == "exclude":
        keep &= ~_nonfinite_mask(parts, located, table["exam_id"].to_numpy(), folder)
    if not keep.any():
        raise DataError(f"{folder}: no exam has both a row in {TABLE} and a usable tracing")
    table = table[keep].reset_index(drop=True)
    reader = CodeReader(
        files=tuple(str(p.file) for p in parts),
        part=located.part[keep].astype(np.int32),
        row=located.row[keep].astype(np.int64),
        exam_ids=table["exam_id"].to_numpy(np.int64),
        samples=parts[0].samples,
    )
    return ExamSet(
        exam_ids=table["exam_id"].to_numpy(np.int64),
        patient_ids=table["patient_id"].to_numpy(),
        labels=table[list(classes)].to_numpy(np.float32),
        class_names=classes,
        sample_rate=float(source_rate),
        lead_names=LEADS_12,
        reader=reader,
        info=table.drop(columns=["exam_id", *classes]),
        source=str(folder),
        labels_from=str(folder / TABLE),
    )


def _nonfinite_mask(
    parts: list[Part], located: Join, exam_ids: np.ndarray, folder: Path
) -> np.ndarray:
    """Table rows whose tracing holds NaN/inf (warns with their exam ids)."""
    bad = np.zeros(len(located.part), bool)
    for i, p in enumerate(parts):
        rows, _ = scan_nonfinite(p.file)
        bad |= (located.part == i) & np.isin(located.row, rows)
    if bad.any():
        warnings.warn(
            f"{folder}: {bad.sum()} exam(s) with NaN/inf samples are excluded "
            f"(nan_policy='exclude'; exam ids {list_ids(exam_ids[bad])})",
            stacklevel=3,
        )
    return bad
