"""PTB-XL (Wagner et al. 2020): `ptbxl_database.csv`, `scp_statements.csv` and WFDB records.

Labels follow the PTB-XL benchmark of Strodthoff et al. (2020), `compute_label_aggregations`
and `select_data` in github.com/helme/ecg_ptbxl_benchmarking (code/utils/utils.py):

- a statement counts when it is a key of `scp_codes`, whatever its likelihood (form and rhythm
  statements always carry likelihood 0);
- "diagnostic", "subdiagnostic" and "superdiagnostic" use only statements with
  `diagnostic == 1` in `scp_statements.csv`, mapped to themselves, to `diagnostic_subclass`
  or to `diagnostic_class` (NORM, MI, STTC, CD, HYP); "form" and "rhythm" keep the statements
  flagged `form == 1` / `rhythm == 1`; "all" keeps every statement;
- exams without any label at the chosen level are left out, and the classes are the sorted
  names that remain.

The recommended split is by `strat_fold` (patient-disjoint): folds 1-8 train, 9 val, 10 test,
given in `info["split"]`. Ages above 89 are coded 300 in PTB-XL and are kept as they are.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.data.dataset import DataError, ExamSet, Problems, ReadOptions
from scaling.data.preprocess import lead_indices, stack_centred
from scaling.data.wfdb_header import INVALID_INT16, read_header

LEVELS = ("superdiagnostic", "subdiagnostic", "diagnostic", "form", "rhythm", "all")
DATABASE = "ptbxl_database.csv"
STATEMENTS = "scp_statements.csv"
PTBXL_LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
LAYOUT = f"{DATABASE}, {STATEMENTS} and WFDB records (PTB-XL)"

_STATEMENT_COLUMNS = (
    "description",
    "diagnostic",
    "form",
    "rhythm",
    "diagnostic_class",
    "diagnostic_subclass",
)
_FILENAME_COLUMN = {"100": "filename_lr", "500": "filename_hr"}
_SPLIT_OF_FOLD = {**dict.fromkeys(range(1, 9), "train"), 9: "val", 10: "test"}
_SEX = {0: "male", 1: "female"}  # PTB-XL codes sex as male 0, female 1 (Wagner et al., Table 2)
_DIAGNOSTIC_COLUMN = {
    "diagnostic": None,
    "subdiagnostic": "diagnostic_subclass",
    "superdiagnostic": "diagnostic_class",
}


def looks_like(path: Path) -> bool:
    return (path / DATABASE).is_file()


def read(path: Path, options: ReadOptions, problems: Problems | None = None) -> ExamSet:
    """The dataset kind's reader (`scaling.data.kinds`)."""
    return read_ptbxl(
        path, level=options.label_level, sampling=str(options.ptbxl_records), problems=problems
    )


def read_ptbxl(
    path: str | Path,
    *,
    level: str = "superdiagnostic",
    sampling: str = "500",
    problems: Problems | None = None,
) -> ExamSet:
    """Read PTB-XL's metadata; signals stay on disk and are read by row.

    `sampling` picks records500/ ("500") or records100/ ("100"). Records listed in the
    database but missing on disk at that rate are left out (a `problems` exclusion).
    """
    problems = problems or Problems()
    root = Path(path)
    if level not in LEVELS:
        raise DataError(f"PTB-XL label level {level!r} is not one of {', '.join(LEVELS)}")
    sampling = str(sampling)
    if sampling not in _FILENAME_COLUMN:
        raise DataError(f"PTB-XL sampling {sampling!r} is not one of '100', '500'")
    file_column = _FILENAME_COLUMN[sampling]

    db_path = root / DATABASE
    db = _read_table(
        db_path,
        ("ecg_id", "patient_id", "age", "sex", "scp_codes", "strat_fold", file_column),
    )
    statements = _read_table(root / STATEMENTS, _STATEMENT_COLUMNS[1:], index_col=0)
    names = _labels_at_level(_parse_scp_codes(db, db_path), statements, level)
    folds = _folds(db, db_path)

    present = np.array([_record_exists(root, f) for f in db[file_column]], dtype=bool)
    if not present.all():
        missing = db["ecg_id"][~present].tolist()
        problems.exclusion(
            f"{len(missing)} of {len(db)} records listed in {db_path} have no {sampling} Hz "
            f"files under {root} and were left out (first ecg_ids: {missing[:5]})"
        )
    keep = present & np.array([len(n) > 0 for n in names], dtype=bool)
    if not keep.any():
        raise DataError(f"{root}: no PTB-XL record with {level} labels found at {sampling} Hz")
    db, folds = db[keep].reset_index(drop=True), folds[keep]
    names = [n for n, k in zip(names, keep, strict=True) if k]

    class_names = tuple(sorted(set().union(*names)))
    labels = np.array([[c in n for c in class_names] for n in names], dtype=np.float32)
    records = tuple(str(root / f) for f in db[file_column])
    first = read_header(Path(records[0] + ".hea"))
    sample_rate, lead_names = first.sample_rate, first.lead_names

    sex = db["sex"].map(_SEX)
    info = pd.DataFrame(
        {
            "age": pd.to_numeric(db["age"], errors="coerce"),
            "sex": sex,
            "is_male": (sex == "male").astype(float).where(sex.notna()),
            "fold": folds,
            "split": [_SPLIT_OF_FOLD[f] for f in folds],
        }
    )
    return ExamSet(
        exam_ids=db["ecg_id"].to_numpy(np.int64),
        patient_ids=_patient_ids(db, db_path),
        labels=labels,
        class_names=class_names,
        sample_rate=sample_rate,
        lead_names=lead_names,
        reader=PtbxlReader(records, sample_rate, lead_names),
        info=info,
        source=str(root),
        labels_from=str(db_path),
    )


@dataclass(frozen=True)
class PtbxlReader:
    """Reads PTB-XL WFDB records (one format-16 `.dat` each) by row, in mV, leads in set order.

    The samples are read with `numpy.fromfile` after `read_header` (~30x faster than
    `wfdb.rdsamp`, whose results the tests compare against); -32768 reads as NaN, as in wfdb.
    """

    records: tuple[str, ...]  # record paths without extension
    sample_rate: float
    lead_names: tuple[str, ...]

    def read(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, 0, len(self.lead_names)), dtype=np.float32)
        return stack_centred([self._record(self.records[r]) for r in rows])

    def _record(self, record: str) -> np.ndarray:
        header = read_header(Path(record + ".hea"))
        if header.sample_rate != self.sample_rate:
            raise DataError(
                f"{header.path}: sample rate {header.sample_rate} Hz; expected "
                f"{self.sample_rate} Hz like the rest of the set"
            )
        if set(header.formats) != {"16"} or len(set(header.files)) != 1:
            raise DataError(
                f"{header.path}: signals in format(s) {', '.join(sorted(set(header.formats)))} "
                f"in {len(set(header.files))} file(s); expected one format-16 file, as in PTB-XL"
            )
        dat = header.path.with_name(header.files[0])
        n_sig = len(header.lead_names)
        try:
            x = np.fromfile(dat, "<i2", offset=header.byte_offsets[0])
        except OSError as e:
            raise DataError(f"{dat}: cannot read the signal file ({e})") from e
        if x.size != n_sig * header.length:
            raise DataError(
                f"{dat}: {x.size} samples; the header says {header.length} x {n_sig} leads"
            )
        x = x.reshape(header.length, n_sig)
        mv = (x.astype(np.float32) - header.baselines) * header.mv_scales()
        mv = np.where(x == INVALID_INT16, np.nan, mv).astype(np.float32)
        if header.lead_names == self.lead_names:
            return mv
        try:
            return mv[:, lead_indices(header.lead_names, self.lead_names)]
        except DataError as e:
            raise DataError(f"{header.path}: {e}") from e


def _read_table(path: Path, columns: tuple[str, ...], index_col: int | None = None) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected PTB-XL's {path.name}")
    try:
        table = pd.read_csv(path, index_col=index_col)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV table ({e})") from e
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    return table


def _parse_scp_codes(db: pd.DataFrame, db_path: Path) -> list[dict[str, float]]:
    """Each row's `scp_codes` string (a Python dict literal) as statement -> likelihood."""
    codes = []
    for ecg_id, text in zip(db["ecg_id"], db["scp_codes"], strict=True):
        try:
            value = ast.literal_eval(text) if isinstance(text, str) else None
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise DataError(
                f"{db_path}: field scp_codes of ecg_id {ecg_id} is {text!r}; expected a dict "
                "literal of statement -> likelihood, e.g. \"{'NORM': 100.0, 'SR': 0.0}\""
            )
        codes.append(value)
    return codes


def _labels_at_level(
    codes: list[dict[str, float]], statements: pd.DataFrame, level: str
) -> list[set[str]]:
    """Each exam's label names at `level` (see the module docstring)."""
    if level == "all":
        return [set(c) for c in codes]
    if level in _DIAGNOSTIC_COLUMN:
        rows = statements[statements["diagnostic"] == 1]
        column = _DIAGNOSTIC_COLUMN[level]
    else:
        rows = statements[statements[level] == 1]
        column = None
    names = rows.index.to_series() if column is None else rows[column]
    mapping = names.dropna().astype(str).to_dict()
    return [{mapping[k] for k in c if k in mapping} for c in codes]


def _folds(db: pd.DataFrame, db_path: Path) -> np.ndarray:
    folds = pd.to_numeric(db["strat_fold"], errors="coerce")
    bad = ~folds.isin(list(_SPLIT_OF_FOLD))
    if bad.any():
        ecg_id, value = db.loc[bad, ["ecg_id", "strat_fold"]].iloc[0].tolist()
        raise DataError(
            f"{db_path}: field strat_fold of ecg_id {ecg_id} is {value}; expected an integer 1-10"
        )
    return folds.to_numpy(np.int64)


def _patient_ids(db: pd.DataFrame, db_path: Path) -> np.ndarray:
    ids = pd.to_numeric(db["patient_id"], errors="coerce")
    if ids.isna().any():
        ecg_id = db["ecg_id"][ids.isna()].iloc[0]
        raise DataError(f"{db_path}: field patient_id of ecg_id {ecg_id} is not a number")
    return ids.to_numpy(np.int64)


def _record_exists(root: Path, record: object) -> bool:
    """Whether `record` (a path like records500/00000/00001_hr) has its .hea and .dat."""
    if not isinstance(record, str):
        return False
    return (root / f"{record}.hea").is_file() and (root / f"{record}.dat").is_file()
