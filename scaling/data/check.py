"""`scaling data check`: scan a whole dataset and list every problem found.

The check is the readers' own collecting mode: the dataset is opened by its kind's reader
with `Problems(collect=True)`, which lists what it can go on without (an unreadable part,
exams left out) instead of raising at the first; then every record is read, and exams
whose signals hold NaN/inf or cannot be read are listed. Only a problem that leaves
nothing to read (a missing or malformed table) ends the check early.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scaling.data.code import list_ids
from scaling.data.dataset import DataError, ExamSet, NonFiniteSignals, Problems
from scaling.data.kinds import detect_kind, open_dataset

READ_BATCH = 256
NORMAL = "normal"  # CODE's exclusive class


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
    problems = Problems(collect=True)
    try:
        exams = open_dataset(kind, str(root), classes=tuple(classes), problems=problems)
    except DataError as e:
        return CheckReport({"path": str(root), "kind": kind}, [*problems.found, str(e)])
    found = problems.found
    lengths = _read_every_record(exams, found)
    if NORMAL in exams.class_names:
        normal = exams.class_names.index(NORMAL)
        both = (exams.labels[:, normal] > 0) & np.delete(exams.labels, normal, 1).any(axis=1)
        if both.any():
            where = exams.labels_from or exams.source
            found.append(f"{where}: {both.sum()} exam(s) marked 'normal' and another class")
    summary = {
        "path": str(root),
        "kind": kind,
        "exams": len(exams),
        "patients": len(np.unique(exams.patient_ids)),
        "leads": len(exams.lead_names),
        "rate": exams.sample_rate,
        "length": lengths.pop() if len(lengths) == 1 else sorted(lengths),
        "prevalence": dict(zip(exams.class_names, exams.labels.mean(axis=0).tolist(), strict=True)),
    }
    return CheckReport(summary, found)


def _read_every_record(exams: ExamSet, problems: list[str]) -> set[int]:
    """Read every exam in batches; list exams with NaN/inf samples (by file) and exams that
    cannot be read (one by one after their batch failed). Returns the signal lengths seen."""
    lengths: set[int] = set()
    nonfinite: dict[str, list] = {}  # file -> exam ids
    for start in range(0, len(exams), READ_BATCH):
        rows = np.arange(start, min(start + READ_BATCH, len(exams)))
        try:
            x = exams.read(rows)
        except NonFiniteSignals as e:  # a reader that refuses them names the exams and files
            for exam, file in zip(e.exam_ids, e.files, strict=True):
                nonfinite.setdefault(file, []).append(exam)
            rows = rows[~np.isin(exams.exam_ids[rows], e.exam_ids)]
            x = exams.read(rows) if len(rows) else None
        except (DataError, ValueError, OSError):
            for row in rows:
                try:
                    lengths.add(exams.read(row[None]).shape[1])
                except NonFiniteSignals as e:
                    nonfinite.setdefault(e.files[0], []).append(e.exam_ids[0])
                except (DataError, ValueError, OSError) as e:
                    problems.append(f"exam id {exams.exam_ids[row]}: {e}")
            continue
        if x is None:
            continue
        lengths.add(x.shape[1])
        bad = exams.exam_ids[rows][~np.isfinite(x).all(axis=(1, 2))]
        if len(bad):
            nonfinite.setdefault(exams.source, []).extend(bad)
    for where, ids in nonfinite.items():
        problems.append(
            f"{where}: {len(ids)} exam(s) with NaN/inf samples (exam ids {list_ids(ids, 20)})"
        )
    return lengths
