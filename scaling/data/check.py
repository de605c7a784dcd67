"""`scaling data check`: scan a whole dataset and list every problem found.

Unlike the readers, which stop at the first problem, the check goes on: a
corrupt part, NaN/inf samples, unmatched exams and odd labels each become one
line of `CheckReport.problems`, next to a summary of what could be read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scaling.config import LEADS_12
from scaling.data.code import (
    TABLE,
    Join,
    Part,
    find_parts,
    join,
    list_ids,
    read_part,
    read_table,
    scan_nonfinite,
    table_classes,
)
from scaling.data.dataset import DataError, ExamSet
from scaling.data.kinds import detect_kind, open_dataset

CODE_RATE = 400.0  # CODE files carry no rate; this is the rate of CODE-II and CODE-15%
READ_BATCH = 256


@dataclass(frozen=True)
class CheckReport:
    """What a dataset holds (`summary`) and everything wrong with it (`problems`)."""

    summary: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = []
        for key, value in self.summary.items():
            if isinstance(value, dict):
                lines.append(f"{key}:")
                lines += [f"  {k:<16} {v:.2%}" for k, v in value.items()]
            else:
                lines.append(f"{key}: {value}")
        lines.append(f"problems: {len(self.problems) or 'none'}")
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def check_dataset(path: str, *, kind: str = "auto", classes: tuple[str, ...] = ()) -> CheckReport:
    """Scan every exam of the dataset at `path` and report its summary and problems."""
    root = Path(path)
    if not root.is_dir():
        return CheckReport({"path": str(root)}, [f"{root}: not a folder"])
    try:
        kind = detect_kind(root) if kind == "auto" else kind
    except DataError as e:
        return CheckReport({"path": str(root)}, [str(e)])
    if kind == "code":
        return _check_code(root, tuple(classes))
    return _check_examset(root, kind, tuple(classes))


def _summary(path: Path, kind: str, **facts) -> dict:
    """Summary keys in a fixed order: path, kind, exams, patients, leads, rate, length,
    prevalence (class -> fraction of exams)."""
    return {"path": str(path), "kind": kind, **facts}


def _check_code(root: Path, classes: tuple[str, ...]) -> CheckReport:
    problems: list[str] = []
    try:
        table = read_table(root)
        classes = table_classes(table, root / TABLE, classes)
    except DataError as e:
        return CheckReport({"path": str(root), "kind": "code"}, [str(e)])
    parts: list[Part] = []
    try:
        files = find_parts(root, table)
    except DataError as e:
        files = []
        problems.append(str(e))
    for file in files:
        try:
            parts.append(read_part(file))
            rows, counts = scan_nonfinite(file)
        except DataError as e:
            problems.append(str(e))
            continue
        if len(rows):
            ids = parts[-1].exam_ids[rows]
            problems.append(
                f"{file}: {len(rows)} exam(s) with NaN/inf samples ({counts.sum()} samples); "
                f"exam ids {list_ids(ids, 20)}"
            )
    lengths = {p.samples for p in parts}
    if len(lengths) > 1:
        problems.append(
            f"{root}: parts hold tracings of different lengths "
            f"({', '.join(f'{p.file.name}: {p.samples}' for p in parts)})"
        )
    located = Join(np.full(len(table), -1), np.full(len(table), -1), np.zeros(0, np.int64))
    if parts:
        try:
            located = join(table, parts, root)
        except DataError as e:
            problems.append(str(e))
    found = located.part >= 0
    if not found.all():
        missing = table["exam_id"].to_numpy()[~found]
        problems.append(
            f"{root / TABLE}: {len(missing)} exam(s) without a tracing "
            f"(exam ids {list_ids(missing, 20)})"
        )
    if len(located.orphans):
        problems.append(
            f"{root}: {len(located.orphans)} tracing(s) without a row in {TABLE} "
            f"(exam ids {list_ids(located.orphans, 20)})"
        )
    labels = table[list(classes)].to_numpy(np.float32)
    if "normal" in classes:
        others = np.delete(labels, classes.index("normal"), axis=1).any(axis=1)
        both = (labels[:, classes.index("normal")] > 0) & others
        if both.any():
            problems.append(
                f"{root / TABLE}: {both.sum()} exam(s) marked 'normal' and another class"
            )
    used = table[found]
    summary = _summary(
        root,
        "code",
        exams=len(used),
        patients=used["patient_id"].nunique(),
        leads=len(LEADS_12),
        rate=CODE_RATE,
        length=lengths.pop() if len(lengths) == 1 else None,
        prevalence=dict(zip(classes, labels[found].mean(axis=0).tolist(), strict=True)),
    )
    return CheckReport(summary, problems)


def _check_examset(root: Path, kind: str, classes: tuple[str, ...]) -> CheckReport:
    """PTB-XL and CPSC: open with their reader, then read every record."""
    try:
        exams = open_dataset(kind, str(root), classes=classes)
    except (DataError, ValueError, OSError) as e:
        return CheckReport({"path": str(root), "kind": kind}, [str(e)])
    problems: list[str] = []
    lengths: set[int] = set()
    for start in range(0, len(exams), READ_BATCH):
        rows = np.arange(start, min(start + READ_BATCH, len(exams)))
        try:
            batches = [(rows, exams.read(rows))]
        except (DataError, ValueError, OSError):
            batches = _read_one_by_one(exams, rows, problems)
        for read_rows, x in batches:
            lengths.add(x.shape[1])
            bad = ~np.isfinite(x).all(axis=(1, 2))
            if bad.any():
                ids = list_ids(exams.exam_ids[read_rows][bad], 20)
                problems.append(f"{root}: NaN/inf samples in exam ids {ids}")
    summary = _summary(
        root,
        kind,
        exams=len(exams),
        patients=len(np.unique(exams.patient_ids)),
        leads=len(exams.lead_names),
        rate=exams.sample_rate,
        length=lengths.pop() if len(lengths) == 1 else sorted(lengths),
        prevalence=dict(zip(exams.class_names, exams.labels.mean(axis=0).tolist(), strict=True)),
    )
    return CheckReport(summary, problems)


def _read_one_by_one(
    exams: ExamSet, rows: np.ndarray, problems: list[str]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read rows singly after a batch failed, adding a problem line per failing exam."""
    out = []
    for row in rows:
        try:
            out.append((row[None], exams.read(row[None])))
        except (DataError, ValueError, OSError) as e:
            problems.append(f"exam id {exams.exam_ids[row]}: {e}")
    return out
