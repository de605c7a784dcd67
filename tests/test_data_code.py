"""CODE-family reader: joining exams.csv with HDF5 parts, and every kind of bad input."""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from scaling.config import CODE15_CLASSES, LEADS_12
from scaling.data import DataError, open_dataset, read_code, write_code_dataset
from scaling.data.dataset import ReadOptions

LENGTH = 256
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write(path: Path, **kw) -> Path:
    args = {"n_exams": 40, "n_patients": 25, "length": LENGTH, "parts": 2, "seed": 3, **kw}
    return write_code_dataset(path, **args)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write(tmp_path / "code")


def tracing_by_id(folder: Path) -> dict[int, np.ndarray]:
    """Every tracing of every part, by exam id, read straight from the files."""
    out = {}
    for file in folder.glob("exams_part*.hdf5"):
        with h5py.File(file) as f:
            out.update(zip(f["exam_id"][:].tolist(), f["tracings"][:], strict=True))
    return out


def edit_part(file: Path, **datasets) -> None:
    """Rewrite a part with some datasets replaced (None drops one)."""
    with h5py.File(file) as f:
        content = {name: f[name][:] for name in f}
    content.update(datasets)
    with h5py.File(file, "w") as f:
        for name, value in content.items():
            if value is not None:
                f.create_dataset(name, data=value)


def edit_table(folder: Path, edit) -> None:
    table = pd.read_csv(folder / "exams.csv")
    edit(table).to_csv(folder / "exams.csv", index=False)


def test_reads_every_exam_joined_across_parts(data):
    exams = read_code(data)
    table = pd.read_csv(data / "exams.csv").set_index("exam_id")
    assert len(exams) == 40 and exams.class_names == CODE15_CLASSES
    assert exams.lead_names == LEADS_12 and exams.sample_rate == 400.0
    assert table["trace_file"].nunique() == 2
    truth = tracing_by_id(data)
    rows = np.array([5, 0, 31, 17, 5, 39])  # unsorted, across parts, with a repeat
    signals = exams.read(rows)
    assert signals.shape == (6, LENGTH, 12) and signals.dtype == np.float32
    for row, signal in zip(rows, signals, strict=True):
        np.testing.assert_array_equal(signal, truth[exams.exam_ids[row]])
    np.testing.assert_array_equal(
        exams.labels, table.loc[exams.exam_ids, list(CODE15_CLASSES)].to_numpy(np.float32)
    )
    np.testing.assert_array_equal(exams.patient_ids, table.loc[exams.exam_ids, "patient_id"])
    assert {"patient_id", "age", "is_male"} <= set(exams.info.columns)
    np.testing.assert_array_equal(exams.info["age"], table.loc[exams.exam_ids, "age"])


def test_classes_are_selected_by_name_and_inferred_when_empty(data):
    two = open_dataset("code", str(data), classes=("AF", "1dAVb"))
    assert two.class_names == ("AF", "1dAVb")
    every = read_code(data)
    assert every.class_names == CODE15_CLASSES
    np.testing.assert_array_equal(two.labels, every.labels[:, [4, 0]])
    assert open_dataset("code", str(data), classes=("SB",)).labels.shape == (40, 1)


def test_reader_pickles_and_reopens_its_files(data):
    exams = read_code(data)
    rows = np.arange(0, 40, 3)
    before = exams.read(rows)
    clone = pickle.loads(pickle.dumps(exams.reader))
    np.testing.assert_array_equal(clone.read(rows), before)


@pytest.mark.parametrize("chunk_exams", [0, 64])
def test_contiguous_and_large_chunk_parts_read_the_same_signals(tmp_path, data, chunk_exams):
    other = read_code(write(tmp_path / f"chunks{chunk_exams}", chunk_exams=chunk_exams))
    with h5py.File(tmp_path / f"chunks{chunk_exams}" / "exams_part0.hdf5") as f:
        assert f["tracings"].chunks == (None if chunk_exams == 0 else (20, LENGTH, 12))
    rows = np.random.default_rng(0).permutation(40)[:25]
    np.testing.assert_array_equal(other.read(rows), read_code(data).read(rows))


def test_join_works_without_trace_file(data):
    edit_table(data, lambda t: t.drop(columns="trace_file"))
    exams = read_code(data)
    truth = tracing_by_id(data)
    np.testing.assert_array_equal(exams.read([7])[0], truth[exams.exam_ids[7]])


def test_padding_rows_with_exam_id_zero_are_ignored(data):
    part = data / "exams_part1.hdf5"
    with h5py.File(part) as f:
        ids, tracings = f["exam_id"][:], f["tracings"][:]
    edit_part(
        part,
        exam_id=np.append(ids, 0),
        tracings=np.concatenate([tracings, np.zeros((1, LENGTH, 12), np.float32)]),
    )
    with warnings.catch_warnings(action="error"):
        exams = read_code(data)
    assert len(exams) == 40 and 0 not in exams.exam_ids


def test_exams_without_tracing_and_tracings_without_row_are_excluded_with_a_warning(data):
    edit_table(data, lambda t: pd.concat([t.iloc[2:], t.iloc[:1].assign(exam_id=999_999_999)]))
    with pytest.warns(UserWarning) as caught:
        exams = read_code(data)
    messages = " ".join(str(w.message) for w in caught)
    assert "1 exam(s) of exams.csv have no tracing" in messages and "999999999" in messages
    assert "2 tracing(s) have no row in exams.csv" in messages
    assert len(exams) == 38 and 999_999_999 not in exams.exam_ids


def test_a_missing_part_excludes_its_exams_with_a_warning(data):
    (data / "exams_part1.hdf5").unlink()
    with pytest.warns(UserWarning, match="20 exam"):
        exams = read_code(data)
    assert len(exams) == 20


def test_nan_samples_fail_at_read_time_or_are_excluded(data):
    part = data / "exams_part0.hdf5"
    with h5py.File(part, "r+") as f:
        bad_id = int(f["exam_id"][4])
        f["tracings"][4, 100, 3] = np.nan
        f["tracings"][4, 101, 3] = np.inf
    exams = read_code(data)
    bad_row = int(np.flatnonzero(exams.exam_ids == bad_id)[0])
    good = np.delete(np.arange(40), bad_row)
    assert np.isfinite(exams.read(good)).all()
    with pytest.raises(DataError, match=rf"exams_part0.hdf5 for exam ids {bad_id}\b"):
        exams.read([good[0], bad_row])
    with pytest.warns(UserWarning, match=rf"1 exam\(s\) with NaN/inf.*{bad_id}"):
        kept = read_code(data, nan_policy="exclude")
    assert len(kept) == 39 and bad_id not in kept.exam_ids
    assert np.isfinite(kept.read(np.arange(39))).all()
    with pytest.raises(ValueError, match="nan_policy"):
        read_code(data, nan_policy="zero")


# ---------------------------------------------------------------------------
# Bad input: a DataError naming the file and the field


def test_missing_folder_table_or_parts(tmp_path, data):
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / 'nowhere'))}: not a folder"):
        read_code(tmp_path / "nowhere")
    for part in data.glob("*.hdf5"):
        part.unlink()
    folder = re.escape(str(data))
    with pytest.raises(DataError, match=rf"^{folder}: no HDF5 parts \(exams_part\*.hdf5\)"):
        read_code(data)
    (data / "exams.csv").unlink()
    with pytest.raises(DataError, match=rf"^{re.escape(str(data / 'exams.csv'))}: missing"):
        read_code(data)


def test_missing_class_column_names_it_and_lists_the_columns(data):
    with pytest.raises(
        DataError,
        match=r"code/exams\.csv: class column\(s\) MI not found; the dataset's classes are "
        r"1dAVb, RBBB, LBBB, SB, "
        r"AF, ST \(other columns: age, is_male, patient_id, trace_file\)",
    ):
        open_dataset("code", str(data), classes=("AF", "MI"))


@pytest.mark.parametrize("column", ["patient_id", "exam_id"])
def test_missing_id_column(data, column):
    edit_table(data, lambda t: t.drop(columns=column))
    with pytest.raises(DataError, match=f"exams.csv: no '{column}' column"):
        read_code(data)


def test_bad_values_in_the_table(data):
    edit_table(data, lambda t: t.assign(AF=t["AF"].replace(0, 2)))
    bad = r"exams\.csv: class column 'AF' must hold 0/1, found 40 other value\(s\) \(e.g. 2, 2, 2\)"
    with pytest.raises(DataError, match=bad):
        open_dataset("code", str(data), classes=("AF",))
    edit_table(data, lambda t: t.assign(AF=0, patient_id=t["patient_id"].where(t.index != 3)))
    with pytest.raises(DataError, match=r"exams\.csv: column 'patient_id' is empty for 1 exam"):
        read_code(data)


def test_duplicate_exam_ids(data):
    edit_table(data, lambda t: t.assign(exam_id=t["exam_id"].where(t.index != 1, t["exam_id"][0])))
    with pytest.raises(DataError, match=r"exams.csv: 1 duplicate exam id"):
        read_code(data)


def test_duplicate_exam_ids_across_parts(data):
    with h5py.File(data / "exams_part0.hdf5") as f:
        first = f["exam_id"][0]
    with h5py.File(data / "exams_part1.hdf5") as f:
        ids = f["exam_id"][:]
    ids[0] = first
    edit_part(data / "exams_part1.hdf5", exam_id=ids)
    with pytest.raises(DataError, match=r"more than one tracing in exams_part0.hdf5, exams_part1"):
        read_code(data)


def test_empty_table(data):
    edit_table(data, lambda t: t.iloc[:0])
    with pytest.raises(DataError, match=r"exams\.csv: no exams"):
        read_code(data)


def test_no_exam_left_after_the_join(data):
    edit_table(data, lambda t: t.assign(exam_id=t["exam_id"] + 10**9))
    with (
        pytest.warns(UserWarning),
        pytest.raises(DataError, match=rf"^{re.escape(str(data))}: no exam has both a row"),
    ):
        read_code(data)


@pytest.mark.parametrize(
    ("datasets", "message"),
    [
        ({"tracings": None}, "no dataset 'tracings'"),
        ({"tracings": np.zeros((20, LENGTH), np.float32)}, r"shape \(20, 256\), expected"),
        ({"tracings": np.zeros((20, LENGTH, 8), np.float32)}, r"expected \(exams, samples, 12\)"),
        ({"tracings": np.zeros((20, LENGTH, 12), np.int16)}, "dtype int16, expected float32"),
        ({"exam_id": None}, "no 1-D integer dataset 'exam_id'"),
        ({"exam_id": np.arange(1, 20)}, "'exam_id' has 19 entries but 'tracings' has 20"),
    ],
)
def test_bad_hdf5_datasets(data, datasets, message):
    edit_part(data / "exams_part1.hdf5", **datasets)
    with pytest.raises(DataError, match=rf"exams_part1.hdf5: .*{message}"):
        read_code(data)


def test_parts_of_different_lengths(data):
    with h5py.File(data / "exams_part1.hdf5") as f:
        tracings = f["tracings"][:, :128]
    edit_part(data / "exams_part1.hdf5", tracings=tracings)
    with pytest.raises(
        DataError, match=rf"^{re.escape(str(data))}: parts .* lengths .*exams_part1\.hdf5: 128"
    ):
        read_code(data)


def test_truncated_hdf5(data):
    part = data / "exams_part1.hdf5"
    os.truncate(part, part.stat().st_size // 2)
    with pytest.raises(DataError, match=r"exams_part1.hdf5: unreadable HDF5 file, truncated"):
        read_code(data)


def test_corrupt_hdf5(data):
    part = data / "exams_part0.hdf5"
    with open(part, "r+b") as f:
        f.write(b"\x00garbage" * 16)
    with pytest.raises(DataError, match=r"exams_part0.hdf5: unreadable HDF5 file"):
        read_code(data)


@pytest.mark.parametrize("opened_before", [False, True])
def test_truncation_found_at_read_time_names_the_file_and_exams(data, opened_before):
    exams = read_code(data)
    rows = np.flatnonzero(exams.info["trace_file"] == "exams_part0.hdf5")
    if opened_before:  # the part is open: rows past the end come back short
        exams.read(rows[:1])
    part = data / "exams_part0.hdf5"
    os.truncate(part, part.stat().st_size // 2)
    with pytest.raises(DataError, match=r"exams_part0\.hdf5"):
        exams.read(rows)


def test_compressed_and_float64_parts_read_through_h5py(data):
    rows = np.arange(40)
    before = read_code(data).read(rows)
    with h5py.File(data / "exams_part0.hdf5") as f:
        ids, tracings = f["exam_id"][:], f["tracings"][:]
    with h5py.File(data / "exams_part0.hdf5", "w") as f:
        f.create_dataset("exam_id", data=ids)
        f.create_dataset("tracings", data=tracings, chunks=(4, LENGTH, 12), compression="gzip")
    edit_part(data / "exams_part1.hdf5", tracings=_part_tracings(data, 1).astype(np.float64))
    np.testing.assert_array_equal(read_code(data).read(rows), before)


def _part_tracings(folder: Path, p: int) -> np.ndarray:
    with h5py.File(folder / f"exams_part{p}.hdf5") as f:
        return f["tracings"][:]


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown dataset kind 'mitbih'; expected one of code"):
        open_dataset("mitbih", "x")


@pytest.mark.skipif(
    not (REAL_DATA / "ptbxl_sample").is_dir(), reason="real PTB-XL sample not in ../shared/data"
)
@pytest.mark.filterwarnings("ignore:.*have no 500 Hz files")
def test_open_dataset_dispatches_to_ptbxl_and_selects_classes():
    path = str(REAL_DATA / "ptbxl_sample")
    exams = open_dataset("ptbxl", path, options=ReadOptions(label_level="superdiagnostic"))
    assert set(exams.info["split"]) <= {"train", "val", "test"}
    two = open_dataset("ptbxl", path, classes=("MI", "NORM"))
    assert two.class_names == ("MI", "NORM")
    np.testing.assert_array_equal(
        two.labels[:, 1], exams.labels[:, exams.class_names.index("NORM")]
    )
    with pytest.raises(DataError, match="AF not found; the dataset's classes are MI, NORM"):
        open_dataset("ptbxl", path, classes=("AF",))
