"""`check_dataset`: a clean dataset's summary, and every problem of a broken one."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from scaling.config import CODE15_CLASSES
from scaling.data import DataError, check_dataset, open_dataset, write_code_dataset
from scaling.data.synthetic import write_cpsc_sample

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_code_dataset(tmp_path / "code", n_exams=45, n_patients=30, length=128, parts=3)


def test_a_clean_dataset_is_summarised(data):
    report = check_dataset(str(data))
    table = pd.read_csv(data / "exams.csv")
    assert report.problems == []
    s = report.summary
    assert (s["kind"], s["exams"], s["patients"], s["leads"], s["length"]) == (
        "code",
        45,
        30,
        12,
        128,
    )
    assert s["rate"] == 400.0
    assert list(s["prevalence"]) == list(CODE15_CLASSES)  # inferred: every 0/1 class column
    assert s["prevalence"]["AF"] == pytest.approx(table["AF"].mean())
    text = report.format()
    assert "exams: 45" in text and "problems: none" in text and "AF" in text


def test_classes_can_be_chosen(data):
    report = check_dataset(str(data), kind="code", classes=("SB", "AF"))
    assert list(report.summary["prevalence"]) == ["SB", "AF"]


def test_every_problem_is_listed(data):
    with h5py.File(data / "exams_part0.hdf5", "r+") as f:
        nan_ids = f["exam_id"][[2, 5]].tolist()
        f["tracings"][2, 10, 0] = np.nan
        f["tracings"][5, :, 3] = np.inf
    with open(data / "exams_part1.hdf5", "r+b") as f:
        f.write(b"\x00" * 64)
    table = pd.read_csv(data / "exams.csv")
    extra = table.iloc[:1].assign(exam_id=123_456_789, trace_file="exams_part2.hdf5")
    pd.concat([table, extra]).to_csv(data / "exams.csv", index=False)

    report = check_dataset(str(data))
    problems = "\n".join(report.problems)
    ids = ", ".join(map(str, nan_ids))
    assert f"exams_part0.hdf5: 2 exam(s) with NaN/inf samples (exam ids {ids})" in problems
    assert report.summary["length"] == 128
    assert "exams_part1.hdf5: unreadable HDF5 file" in problems
    assert "123456789" in problems  # no tracing for the extra row
    assert len(report.problems) >= 3
    assert report.summary["exams"] == 45 - 15  # the readable parts 0 and 2
    assert "problems: " in report.format() and "- " in report.format()


def test_unreadable_table_or_unknown_folder(tmp_path, data):
    (data / "exams.csv").write_text("exam_id,age\n1,50\n")
    assert "no 'patient_id' column" in check_dataset(str(data)).problems[0]
    assert "cannot tell the dataset kind" in check_dataset(str(tmp_path)).problems[0]
    assert "not a folder" in check_dataset(str(tmp_path / "none")).problems[0]


def test_normal_together_with_another_class_is_a_problem(tmp_path):
    classes = (*CODE15_CLASSES, "normal")
    path = write_code_dataset(tmp_path, n_exams=20, n_patients=20, classes=classes, length=64)
    table = pd.read_csv(path / "exams.csv")
    table.loc[table["normal"] == 1, "AF"] = 1
    table.to_csv(path / "exams.csv", index=False)
    assert any("marked 'normal' and another class" in p for p in check_dataset(str(path)).problems)


@pytest.mark.parametrize(("folder", "kind"), [("ptbxl_sample", "ptbxl"), ("cpsc_sample", "cpsc")])
def test_real_samples_are_detected_and_read(folder, kind):
    path = REAL_DATA / folder
    if not path.is_dir():
        pytest.skip(f"real data sample {folder} not in ../shared/data")
    report = check_dataset(str(path))
    assert report.summary["kind"] == kind
    assert report.summary["exams"] > 10 and report.summary["leads"] == 12
    if kind == "ptbxl":  # a sample: the database lists the records left out of it
        assert len(report.problems) == 1, report.problems
        assert "have no 500 Hz files" in report.problems[0] and "left out" in report.problems[0]
    else:
        assert report.problems == []


def test_cpsc_records_left_out_or_broken_are_listed_and_the_rest_read(tmp_path):
    path = write_cpsc_sample(tmp_path / "cpsc", n_records=8, seed=3)
    (path / "A0002.mat").unlink()
    header = path / "A0005.hea"
    header.write_text("".join(l for l in header.read_text().splitlines(True) if "Dx" not in l))
    report = check_dataset(str(path))
    problems = "\n".join(report.problems)
    assert "1 record(s)" in problems and "A0002" in problems and ".mat signal files" in problems
    assert "A0005.hea: no '# Dx:' comment line" in problems
    assert report.summary["exams"] == 6
    with pytest.raises(DataError, match=r"A0005\.hea: no '# Dx:'"):  # fatal for a run
        open_dataset("cpsc", str(path))
