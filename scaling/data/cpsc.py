"""CPSC 2018 (Liu et al. 2018) and the PhysioNet/CinC Challenge 2020/2021 `.mat` + `.hea` layout.

Two layouts are read, both searched recursively under the given folder:

- original: `REFERENCE.csv` at the top (Recording, First_label, Second_label, Third_label;
  label numbers 1-9 in `CPSC_CLASSES` order) gives the labels. Each record is either a
  Challenge-style `.mat` + `.hea` pair, or a `.mat` of the 2018 release alone, holding a struct
  `ECG` with fields sex, age and data (12 x samples, mV, 500 Hz, leads as `CPSC_LEADS`).
- Challenge 2020/2021 (no `REFERENCE.csv`): the `#Dx:` / `# Dx:` comment of each `.hea` lists
  CPSC class names (2020 CPSC files, e.g. "AF,RBBB") or SNOMED CT codes (2021), mapped with
  `SNOMED_CLASSES`. In 2021 data "Normal" means the code for sinus rhythm, which may come
  with other findings. Records without any of the classes are kept with all-zero labels.

CPSC has one record per patient, so a record's name is its patient id. Challenge `.mat` files
hold `val`, int16 (leads x samples); mV = (val - baseline) / gain with both from the header.
Headers are read with `scaling.data.wfdb_header` (fast, and it accepts the real Georgia
headers that `wfdb.rdheader` rejects). A digital -32768 is WFDB's invalid sample: read as NaN.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from scaling.data.dataset import DataError, ExamSet, Problems, ReadOptions
from scaling.data.preprocess import lead_indices, stack_centred
from scaling.data.wfdb_header import INVALID_INT16, Header, read_header

CPSC_CLASSES = ("Normal", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE")
CPSC_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
CPSC_RATE = 500.0
REFERENCE = "REFERENCE.csv"
LAYOUT = f".mat + .hea records, or .mat with {REFERENCE} (CPSC 2018, Challenge 2020/2021)"
_LABEL_COLUMNS = ("First_label", "Second_label", "Third_label")

# SNOMED CT code -> CPSC class, from the Challenge 2021 tables dx_mapping_scored.csv and
# dx_mapping_unscored.csv (github.com/physionetchallenges/evaluation-2021). Their "CPSC" column
# counts the 2018 records under exactly these codes (sinus rhythm 918, AF 1221, IAVB 722,
# LBBB 236, RBBB 1857, PAC 616, ventricular ectopics 700, STD 869, STE 220), and the scored
# table's notes score 733534002/164909002, 713427006/59118001, 63593006/284470004 and
# 17338001/427172004 as the same diagnosis.
SNOMED_CLASSES = {
    "426783006": "Normal",  # sinus rhythm
    "164889003": "AF",  # atrial fibrillation
    "270492004": "I-AVB",  # 1st degree AV block
    "164909002": "LBBB",  # left bundle branch block
    "733534002": "LBBB",  # complete left bundle branch block
    "59118001": "RBBB",  # right bundle branch block
    "713427006": "RBBB",  # complete right bundle branch block
    "284470004": "PAC",  # premature atrial contraction
    "63593006": "PAC",  # supraventricular premature beats
    "164884008": "PVC",  # ventricular ectopics (CPSC's PVC records)
    "427172004": "PVC",  # premature ventricular contractions
    "17338001": "PVC",  # ventricular premature beats
    "429622005": "STD",  # ST depression
    "164931005": "STE",  # ST elevation
}


def looks_like(path: Path) -> bool:
    return bool(
        next(path.glob("*.hea"), None)
        or next(path.glob("*/*.hea"), None)
        or (path / REFERENCE).is_file()
    )


def read(path: Path, options: ReadOptions, problems: Problems | None = None) -> ExamSet:
    """The dataset kind's reader (`scaling.data.kinds`)."""
    return read_cpsc(path, problems=problems)


def read_cpsc(path: str | Path, *, problems: Problems | None = None) -> ExamSet:
    """Read CPSC 2018 (either layout) or Challenge 2020/2021 data, with the nine
    `CPSC_CLASSES`; signals stay on disk. Records without a signal file, label or readable
    header are left out through `problems` (a warning, or listed by `data check`)."""
    problems = problems or Problems()
    root = Path(path)
    classes = CPSC_CLASSES
    if not root.is_dir():
        raise DataError(f"{root}: folder not found; expected CPSC 2018 / Challenge records")
    if (root / REFERENCE).is_file():
        records = _records_with_reference(root, problems)
    else:
        records = _records_with_dx(root, problems)
    if not records:
        raise DataError(f"{root}: no records; expected .hea + .mat files, or {REFERENCE} + .mat")

    rates = {r.sample_rate for r in records}
    if len(rates) > 1:
        raise DataError(
            f"{root}: records have different sample rates {sorted(rates)} Hz; "
            "read one database (one rate) at a time"
        )
    lead_names = records[0].lead_names
    columns = np.stack([_columns(r, lead_names) for r in records])

    labels = np.array([[c in r.classes for c in classes] for r in records], dtype=np.float32)
    unlabelled = [r.name for r, y in zip(records, labels, strict=True) if not y.any()]
    if unlabelled:
        warnings.warn(
            f"{len(unlabelled)} of {len(records)} records under {root} have none of the classes "
            f"{', '.join(classes)} and are kept with all-zero labels (first: {unlabelled[:5]})",
            stacklevel=3,
        )
    names = np.array([r.name for r in records])
    sex = pd.Series([r.sex for r in records], dtype=object)
    info = pd.DataFrame(
        {
            "age": [r.age for r in records],
            "sex": sex,
            "is_male": (sex == "male").astype(float).where(sex.notna()),
            "dx": [r.dx for r in records],
        }
    )
    reader = MatReader(
        files=tuple(str(r.mat) for r in records),
        shapes=np.array([(len(r.lead_names), r.length) for r in records], dtype=np.int64),
        columns=columns,
        baselines=np.stack([r.baselines[c] for r, c in zip(records, columns, strict=True)]),
        scales=np.stack([r.scales[c] for r, c in zip(records, columns, strict=True)]),
    )
    return ExamSet(
        exam_ids=names,
        patient_ids=names.copy(),
        labels=labels,
        class_names=tuple(classes),
        sample_rate=rates.pop(),
        lead_names=lead_names,
        reader=reader,
        info=info,
        source=str(root),
    )


@dataclass(frozen=True, eq=False)
class MatReader:
    """Reads `.mat` records by row: (digital - baseline) * scale, in mV, leads in set order."""

    files: tuple[str, ...]
    shapes: np.ndarray  # (N, 2): leads and samples stored in each file
    columns: np.ndarray  # (N, leads): the file row of each of the set's leads
    baselines: np.ndarray  # (N, leads), digital units
    scales: np.ndarray  # (N, leads), mV per digital unit

    def read(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, 0, self.columns.shape[1]), dtype=np.float32)
        return stack_centred([self._record(r) for r in rows])

    def _record(self, row: int) -> np.ndarray:
        path = self.files[row]
        x = _load_mat(Path(path))
        if x.shape != tuple(self.shapes[row]):
            raise DataError(
                f"{path}: signal of shape {x.shape}; the header says {tuple(self.shapes[row])} "
                "(leads, samples)"
            )
        x = x[self.columns[row]].T
        mv = (x.astype(np.float32) - self.baselines[row]) * self.scales[row]
        return np.where(x == INVALID_INT16, np.nan, mv).astype(np.float32)


# ---------------------------------------------------------------------------
# Records and their metadata


@dataclass(frozen=True)
class _Record:
    name: str
    mat: Path
    sample_rate: float
    length: int
    lead_names: tuple[str, ...]
    baselines: np.ndarray
    scales: np.ndarray  # mV per digital unit
    classes: frozenset[str]
    dx: str
    age: float
    sex: str | None


def _records_with_dx(root: Path, problems: Problems) -> list[_Record]:
    """Challenge layout: one record per `.hea`, labels from its Dx comment."""
    records, missing = [], []
    for hea in _unique_by_name(root, "*.hea"):
        mat = hea.with_suffix(".mat")
        if not mat.is_file():
            missing.append(hea.stem)
            continue
        try:
            header = read_header(hea)
            if "Dx" not in header.comments:
                raise DataError(f"{hea}: no '# Dx:' comment line; expected the record's diagnoses")
            dx = header.comments["Dx"]
            records.append(_from_header(hea.stem, mat, header, _dx_classes(hea, dx), dx))
        except DataError as e:
            problems.error(str(e))
    _missing(problems, root, missing, ".mat signal files")
    return records


def _records_with_reference(root: Path, problems: Problems) -> list[_Record]:
    """Original layout: the records listed in REFERENCE.csv, labels from there."""
    labels = _read_reference(root / REFERENCE)
    mats = {p.stem: p for p in _unique_by_name(root, "*.mat")}
    records, missing = [], []
    for name, classes in labels.items():
        if name not in mats:
            missing.append(name)
            continue
        mat, hea = mats[name], mats[name].with_suffix(".hea")
        dx = ",".join(classes)
        try:
            if hea.is_file():
                records.append(_from_header(name, mat, read_header(hea), frozenset(classes), dx))
            else:
                records.append(_from_struct(name, mat, frozenset(classes), dx))
        except DataError as e:
            problems.error(str(e))
    _missing(problems, root, missing, ".mat files for recordings listed in " + REFERENCE)
    unlisted = sorted(set(mats) - set(labels))
    _missing(problems, root, unlisted, f"labels in {REFERENCE} (their .mat files are ignored)")
    return records


def _from_header(name: str, mat: Path, header: Header, classes: frozenset[str], dx: str) -> _Record:
    return _Record(
        name=name,
        mat=mat,
        sample_rate=header.sample_rate,
        length=header.length,
        lead_names=header.lead_names,
        baselines=header.baselines,
        scales=header.mv_scales(),
        classes=classes,
        dx=dx,
        age=_age(header.comments.get("Age")),
        sex=_sex(header.comments.get("Sex")),
    )


def _from_struct(name: str, mat: Path, classes: frozenset[str], dx: str) -> _Record:
    """A CPSC 2018 release file: struct ECG with sex, age and data (12 x samples, mV)."""
    ecg = _ecg_struct(_read_mat(mat), mat)
    n = len(CPSC_LEADS)
    return _Record(
        name=name,
        mat=mat,
        sample_rate=CPSC_RATE,
        length=ecg["data"].shape[1],
        lead_names=CPSC_LEADS,
        baselines=np.zeros(n),
        scales=np.ones(n),
        classes=classes,
        dx=dx,
        age=_age(str(ecg.get("age"))),
        sex=_sex(str(ecg.get("sex"))),
    )


def _read_reference(path: Path) -> dict[str, list[str]]:
    """Recording -> its CPSC classes, from REFERENCE.csv."""
    try:
        table = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV table ({e})") from e
    missing = [c for c in ("Recording", *_LABEL_COLUMNS) if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    numbers = ", ".join(f"{i}={c}" for i, c in enumerate(CPSC_CLASSES, start=1))
    out: dict[str, list[str]] = {}
    for row in table.itertuples(index=False):
        name = str(row.Recording).strip()
        if name in out:
            raise DataError(f"{path}: Recording {name} is listed twice")
        classes = []
        for column in _LABEL_COLUMNS:
            value = getattr(row, column)
            if pd.isna(value) or not str(value).strip():
                continue
            number = str(value).strip().removesuffix(".0")
            if not number.isdigit() or not 1 <= int(number) <= len(CPSC_CLASSES):
                raise DataError(
                    f"{path}: {column} of Recording {name} is {value!r}; expected a label "
                    f"number ({numbers})"
                )
            classes.append(CPSC_CLASSES[int(number) - 1])
        if not classes:
            raise DataError(f"{path}: Recording {name} has no label; expected First_label")
        out[name] = classes
    return out


def _dx_classes(hea: Path, dx: str) -> frozenset[str]:
    """CPSC classes named by a Dx comment: CPSC class names or SNOMED CT codes."""
    tokens = [t.strip() for t in dx.split(",") if t.strip()]
    if not tokens:
        raise DataError(f"{hea}: empty Dx comment; expected diagnoses such as 'AF,RBBB'")
    classes = set()
    for token in tokens:
        if token in CPSC_CLASSES:
            classes.add(token)
        elif token.isdigit():
            if token in SNOMED_CLASSES:
                classes.add(SNOMED_CLASSES[token])
        else:
            raise DataError(
                f"{hea}: Dx entry {token!r} is neither a CPSC class ({', '.join(CPSC_CLASSES)}) "
                "nor a SNOMED CT code"
            )
    return frozenset(classes)


def _unique_by_name(root: Path, pattern: str) -> list[Path]:
    """Files under `root` matching `pattern`, sorted by name; a name found twice is an error."""
    seen: dict[str, Path] = {}
    for path in sorted(root.rglob(pattern)):
        if path.stem in seen:
            raise DataError(f"record {path.stem} is found twice: {seen[path.stem]} and {path}")
        seen[path.stem] = path
    return [seen[k] for k in sorted(seen)]


def _missing(problems: Problems, root: Path, names: list[str], what: str) -> None:
    if names:
        problems.exclusion(
            f"{len(names)} record(s) under {root} have no {what} and were left out "
            f"(first: {names[:5]})"
        )


def _columns(record: _Record, lead_names: tuple[str, ...]) -> np.ndarray:
    try:
        return lead_indices(record.lead_names, lead_names)
    except DataError as e:
        raise DataError(f"{record.mat}: {e}") from e


def _load_mat(path: Path) -> np.ndarray:
    """The (leads, samples) signal of a Challenge (`val`) or CPSC 2018 (`ECG.data`) file."""
    mat = _read_mat(path)
    if "val" in mat:
        return np.atleast_2d(mat["val"])
    return _ecg_struct(mat, path)["data"]


def _read_mat(path: Path) -> dict:
    try:
        return scipy.io.loadmat(path, simplify_cells=True)
    except (OSError, ValueError, scipy.io.matlab.MatReadError) as e:
        raise DataError(f"{path}: cannot read the .mat file ({e})") from e


def _ecg_struct(mat: dict, path: Path) -> dict:
    ecg = mat.get("ECG")
    if not isinstance(ecg, dict) or np.ndim(ecg.get("data")) != 2:
        raise DataError(
            f"{path}: no variable 'val' (Challenge record) or struct 'ECG' with a 2-D field "
            "'data' (CPSC 2018 record)"
        )
    return ecg


def _age(text: str | None) -> float:
    try:
        return float(text) if text is not None else float("nan")
    except ValueError:
        return float("nan")  # "Unknown", "NaN"


def _sex(text: str | None) -> str | None:
    return {"male": "male", "m": "male", "female": "female", "f": "female"}.get(
        (text or "").strip().lower()
    )
