"""A synthetic dataset in the CODE layout: `exams.csv` and `exams_part{i}.hdf5`."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from scaling.config import CODE15_CLASSES, LEADS_12
from scaling.data.synthetic.waveforms import BLOCK, NORMAL, PREVALENCE, ecg_waveforms


def sample_labels(n: int, classes: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """(n, C) int8 multi-labels with long-tailed prevalences and no impossible pairs.

    Prevalences fall geometrically from 20% to 2% in class order; of classes no exam
    has together the rarest is kept. "normal", when listed, is exclusive: 1 exactly
    when no other class is.
    """
    graded = [c for c in classes if c != NORMAL]
    prevalence = np.geomspace(*PREVALENCE, len(graded)) if len(graded) > 1 else PREVALENCE[:1]
    y = rng.random((n, len(graded))) < np.asarray(prevalence)
    col = {c: i for i, c in enumerate(graded)}
    for group in (("SB", "ST", "AF"), ("RBBB", "LBBB")):
        idx = [col[c] for c in group if c in col]
        if len(idx) > 1:  # keep the rarest positive of the group
            key = np.where(y[:, idx], -np.asarray(prevalence)[idx], -np.inf)
            keep = np.argmax(key, axis=1)
            y[:, idx] &= np.arange(len(idx)) == keep[:, None]
    if "AF" in col and "1dAVb" in col:
        y[:, col["1dAVb"]] &= ~y[:, col["AF"]]
    normal = ~y.any(axis=1)
    return np.stack([normal if c == NORMAL else y[:, col[c]] for c in classes], axis=1).astype(
        np.int8
    )


def _exam_table(
    n_exams: int, n_patients: int, classes: tuple[str, ...], parts: int, rng: np.random.Generator
) -> pd.DataFrame:
    """exams.csv content, in file order; `part_row` gives each exam's row in its part."""
    per_patient = 1 + rng.multinomial(n_exams - n_patients, rng.dirichlet(np.ones(n_patients)))
    patient_ids = rng.choice(10 * n_patients, n_patients, replace=False) + 1
    base_age = rng.integers(18, 87, n_patients)
    male = rng.random(n_patients) < 0.45
    patient = np.repeat(np.arange(n_patients), per_patient)
    table = pd.DataFrame(
        {
            "exam_id": rng.choice(10 * n_exams, n_exams, replace=False) + 1,
            "age": np.minimum(base_age[patient] + rng.integers(0, 4, n_exams), 90),
            "is_male": male[patient].astype(np.int8),
        }
    )
    labels = sample_labels(n_exams, classes, rng)
    for j, c in enumerate(classes):
        table[c] = labels[:, j]
    table["patient_id"] = patient_ids[patient]
    order = rng.permutation(n_exams)  # which part, and where in it, each exam is written
    part = np.empty(n_exams, np.int64)
    part_row = np.empty(n_exams, np.int64)
    for p, chunk in enumerate(np.array_split(order, parts)):
        part[chunk] = p
        part_row[chunk] = np.arange(len(chunk))
    table["trace_file"] = [f"exams_part{p}.hdf5" for p in part]
    table["part_row"] = part_row
    return table.sort_values("exam_id", ignore_index=True)


def write_code_dataset(
    out: str | Path,
    *,
    n_exams: int,
    n_patients: int,
    classes: tuple[str, ...] = CODE15_CLASSES,
    length: int = 4096,
    parts: int = 2,
    seed: int = 0,
    rate: float = 400.0,
    chunk_exams: int = 1,
) -> Path:
    """Write a synthetic CODE-layout dataset (exams.csv + exams_part{i}.hdf5) into `out`.

    Patients have one or more exams (geometric-like counts), labels are long-tailed
    multi-labels, tracings are written in blocks of exams so memory stays bounded
    whatever the size. `chunk_exams` sets HDF5 chunks of (chunk_exams, length, 12);
    0 writes contiguous datasets. Deterministic under `seed`; files are written
    under temporary names and replace any previous dataset in `out` only at the end.
    """
    classes = tuple(classes)
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be non-empty and distinct, got {classes}")
    if n_exams < 1 or not 1 <= n_patients <= n_exams:
        raise ValueError(
            f"need n_exams >= 1 and 1 <= n_patients <= n_exams, got {n_exams} exams, "
            f"{n_patients} patients"
        )
    if not 1 <= parts <= n_exams or seed < 0 or chunk_exams < 0 or length < 1:
        raise ValueError(
            f"need 1 <= parts <= n_exams, seed >= 0, chunk_exams >= 0 and length >= 1; got "
            f"parts={parts}, seed={seed}, chunk_exams={chunk_exams}, length={length}"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    table = _exam_table(n_exams, n_patients, classes, parts, rng)
    written: list[tuple[Path, Path]] = []
    try:
        for p in range(parts):
            final = out / f"exams_part{p}.hdf5"
            tmp = out / f".{final.name}.tmp"
            written.append((tmp, final))
            rows = table[table["trace_file"] == final.name].sort_values("part_row")
            _write_part(tmp, rows, classes, length, rate, chunk_exams, [seed, p])
        tmp = out / ".exams.csv.tmp"
        written.append((tmp, out / "exams.csv"))
        table.drop(columns="part_row").to_csv(tmp, index=False)
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    for old in out.glob("exams_part*.hdf5"):
        old.unlink()
    for tmp, final in written:
        tmp.replace(final)
    return out


def _write_part(
    file: Path,
    rows: pd.DataFrame,
    classes: tuple[str, ...],
    length: int,
    rate: float,
    chunk_exams: int,
    seed: list[int],
) -> None:
    n = len(rows)
    chunks = (min(chunk_exams, n), length, len(LEADS_12)) if chunk_exams else None
    labels = rows[list(classes)].to_numpy()
    with h5py.File(file, "w") as f:
        f.create_dataset("exam_id", data=rows["exam_id"].to_numpy(np.int64))
        tracings = f.create_dataset(
            "tracings", shape=(n, length, len(LEADS_12)), dtype=np.float32, chunks=chunks
        )
        for start in range(0, n, BLOCK):
            rng = np.random.default_rng([*seed, start])
            block = labels[start : start + BLOCK]
            tracings[start : start + len(block)] = ecg_waveforms(
                block, classes, rate=rate, length=length, rng=rng
            )
