"""CPSC 2018 / Challenge 2020-2021 reader on the real samples, its errors, and the writer."""

import pickle
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.io
import wfdb

from scaling.data.cpsc import (
    CPSC_CLASSES,
    CPSC_LEADS,
    REFERENCE,
    SNOMED_CLASSES,
    read_cpsc,
)
from scaling.data.dataset import DataError
from scaling.data.kinds import open_dataset
from scaling.data.synthetic import write_cpsc_sample


@pytest.fixture(scope="module")
def cpsc_dir(shared_data):
    return shared_data / "cpsc_sample" / "records"


@pytest.fixture(scope="module")
def challenge_dir(shared_data):
    return shared_data / "physionet2021_sample"


@pytest.fixture(scope="module")
def cpsc(cpsc_dir):
    return read_cpsc(cpsc_dir)


def dx_line(hea):
    """The Dx comment of a header, read as plain text."""
    (line,) = [x for x in hea.read_text().splitlines() if x.lstrip("#").strip().startswith("Dx")]
    return line.split(":", 1)[1].strip()


def labels_of(exams, name):
    row = int(np.flatnonzero(exams.exam_ids == name)[0])
    return {c for c, y in zip(exams.class_names, exams.labels[row], strict=True) if y}


def test_cpsc_sample_metadata(cpsc, cpsc_dir):
    assert len(cpsc) == 104
    assert cpsc.sample_rate == 500.0
    assert cpsc.lead_names == CPSC_LEADS
    assert cpsc.class_names == CPSC_CLASSES
    assert labels_of(cpsc, "A0001") == {"RBBB"}
    both = [h.stem for h in sorted(cpsc_dir.glob("*.hea")) if dx_line(h) == "AF,RBBB"]
    assert len(both) == 3
    assert all(labels_of(cpsc, name) == {"AF", "RBBB"} for name in both)
    for name, y in zip(cpsc.exam_ids, cpsc.labels, strict=True):
        expected = set(dx_line(cpsc_dir / f"{name}.hea").split(","))
        assert {c for c, v in zip(CPSC_CLASSES, y, strict=True) if v} == expected
    np.testing.assert_array_equal(cpsc.patient_ids, cpsc.exam_ids)
    assert cpsc.info.loc[0, "age"] == 74.0 and cpsc.info.loc[0, "sex"] == "male"
    assert cpsc.info.loc[0, "is_male"] == 1.0


def test_cpsc_signals_in_mv_centred_to_the_longest(cpsc, cpsc_dir):
    lengths = {n: wfdb.rdheader(str(cpsc_dir / n)).sig_len for n in cpsc.exam_ids[:10]}
    rows = np.array([0, int(np.argmax(list(lengths.values())))])
    x = cpsc.read(rows)
    longest = max(lengths[cpsc.exam_ids[r]] for r in rows)
    assert x.shape == (2, longest, 12)
    assert x.dtype == np.float32
    for i, row in enumerate(rows):
        expected = wfdb.rdrecord(str(cpsc_dir / cpsc.exam_ids[row])).p_signal
        start = (longest - len(expected)) // 2
        np.testing.assert_allclose(x[i, start : start + len(expected)], expected, atol=1e-6)
        assert not x[i, :start].any() and not x[i, start + len(expected) :].any()
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(cpsc.reader)).read(rows), x)
    assert cpsc.read(np.array([], dtype=np.int64)).shape == (0, 0, 12)


def test_class_subset(cpsc_dir, cpsc):
    subset = open_dataset("cpsc", str(cpsc_dir), classes=("RBBB", "AF"))
    assert subset.class_names == ("RBBB", "AF")
    np.testing.assert_array_equal(subset.labels, cpsc.labels[:, [4, 1]])
    with pytest.raises(DataError, match="AFIB not found; the dataset's classes are Normal, AF"):
        open_dataset("cpsc", str(cpsc_dir), classes=("AFIB",))


def test_snomed_codes_of_the_2021_layout(challenge_dir):
    with pytest.warns(UserWarning, match="10 of 32 records .* all-zero labels"):
        exams = read_cpsc(challenge_dir)
    assert len(exams) == 32 and exams.sample_rate == 500.0
    # HR06000 (PTB-XL ecg_id 6000): T-wave abnormal (no class) and sinus rhythm
    assert dx_line(challenge_dir / "records/HR06000.hea") == "164934002,426783006"
    assert labels_of(exams, "HR06000") == {"Normal"}
    assert labels_of(exams, "E07509") == {"RBBB"}  # 59118001, sinus bradycardia
    assert labels_of(exams, "JS20000") == {"PAC"}  # 284470004 + three other findings
    assert labels_of(exams, "JS20003") == {"PAC", "PVC"}  # 427172004 is a PVC code
    assert labels_of(exams, "E07500") == set()  # left atrial enlargement, sinus bradycardia
    for name, dx in zip(exams.exam_ids, exams.info["dx"], strict=True):
        expected = {SNOMED_CLASSES[c] for c in dx.split(",") if c in SNOMED_CLASSES}
        assert labels_of(exams, name) == expected
    x = exams.read(np.arange(len(exams)))
    assert x.shape == (32, 5000, 12) and np.isfinite(x).all()


def test_header_wfdb_rejects_is_read(challenge_dir):
    folder = challenge_dir / "records_nonstandard_header"
    with pytest.raises(wfdb.io.header.HeaderSyntaxError):
        wfdb.rdheader(str(folder / "E00666"))
    with pytest.warns(UserWarning, match="1 of 1"):
        exams = read_cpsc(folder)
    assert list(exams.exam_ids) == ["E00666"]
    assert exams.labels.sum() == 0
    assert exams.info.loc[0, "age"] == 77.0
    raw = scipy.io.loadmat(folder / "E00666.mat")["val"]
    np.testing.assert_allclose(exams.read(np.array([0]))[0], raw.T / 1000.0, atol=1e-6)


# ---------------------------------------------------------------------------
# The original layout: REFERENCE.csv gives the labels


@pytest.fixture
def original_copy(cpsc_dir, cpsc, tmp_path):
    """The real records with their Dx lines removed, labels in REFERENCE.csv."""
    rows = []
    for name, y in zip(cpsc.exam_ids, cpsc.labels, strict=True):
        shutil.copy(cpsc_dir / f"{name}.mat", tmp_path / f"{name}.mat")
        text = (cpsc_dir / f"{name}.hea").read_text().splitlines(keepends=True)
        (tmp_path / f"{name}.hea").write_text("".join(x for x in text if "Dx" not in x))
        numbers = list(np.flatnonzero(y) + 1)
        rows.append([name, *numbers, *[None] * (3 - len(numbers))])
    columns = ["Recording", "First_label", "Second_label", "Third_label"]
    pd.DataFrame(rows, columns=columns).astype(object).to_csv(tmp_path / REFERENCE, index=False)
    return tmp_path


def test_original_layout_matches_the_challenge_layout(original_copy, cpsc):
    exams = read_cpsc(original_copy)
    np.testing.assert_array_equal(exams.exam_ids, cpsc.exam_ids)
    np.testing.assert_array_equal(exams.labels, cpsc.labels)
    np.testing.assert_array_equal(exams.info["age"], cpsc.info["age"])
    rows = np.array([0, 7, 50])
    np.testing.assert_array_equal(exams.read(rows), cpsc.read(rows))


def test_original_layout_leaves_out_missing_files(original_copy):
    (original_copy / "A0002.mat").unlink()
    with pytest.warns(UserWarning, match=r"1 record\(s\) .* no \.mat files .* \['A0002'\]"):
        exams = read_cpsc(original_copy)
    assert len(exams) == 103 and "A0002" not in exams.exam_ids


def rewrite_reference(folder, edit):
    table = pd.read_csv(folder / REFERENCE, dtype=str)
    edit(table)
    table.to_csv(folder / REFERENCE, index=False)


def test_unknown_label_number_is_a_data_error(original_copy):
    rewrite_reference(original_copy, lambda t: t.loc.__setitem__((2, "Second_label"), "12"))
    with pytest.raises(DataError, match=r"REFERENCE\.csv: Second_label of Recording A0003 is '12'"):
        read_cpsc(original_copy)


def test_missing_reference_column_is_a_data_error(original_copy):
    rewrite_reference(original_copy, lambda t: t.drop(columns="Third_label", inplace=True))
    with pytest.raises(DataError, match=r"REFERENCE\.csv: missing column\(s\) Third_label"):
        read_cpsc(original_copy)


# ---------------------------------------------------------------------------
# Malformed headers


@pytest.fixture
def two_records(cpsc_dir, tmp_path):
    for name in ("A0001", "A0002"):
        for ext in (".hea", ".mat"):
            shutil.copy(cpsc_dir / f"{name}{ext}", tmp_path / f"{name}{ext}")
    return tmp_path


def edit_header(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_header_without_dx_is_a_data_error(two_records):
    edit_header(two_records / "A0002.hea", "#Dx: Normal\n", "")
    with pytest.raises(DataError, match=r"A0002\.hea: no '# Dx:' comment"):
        read_cpsc(two_records)


def test_unknown_dx_entry_is_a_data_error(two_records):
    edit_header(two_records / "A0002.hea", "#Dx: Normal", "#Dx: Normal,RBB")
    with pytest.raises(DataError, match=r"A0002\.hea: Dx entry 'RBB'"):
        read_cpsc(two_records)


def test_bad_record_line_is_a_data_error(two_records):
    edit_header(two_records / "A0001.hea", "A0001 12 500 7500", "A0001 12 500Hz")
    with pytest.raises(DataError, match=r"A0001\.hea: record line 'A0001 12 500Hz"):
        read_cpsc(two_records)


def test_missing_signal_line_is_a_data_error(two_records):
    text = (two_records / "A0001.hea").read_text().splitlines(keepends=True)
    (two_records / "A0001.hea").write_text("".join(text[:5] + text[6:]))
    with pytest.raises(DataError, match=r"A0001\.hea: record line announces 12 signals but has 11"):
        read_cpsc(two_records)


def test_mixed_sample_rates_are_a_data_error(two_records):
    edit_header(two_records / "A0001.hea", "A0001 12 500 7500", "A0001 12 250 7500")
    folder = re.escape(str(two_records))
    with pytest.raises(DataError, match=rf"^{folder}: records have different sample rates \[250"):
        read_cpsc(two_records)


def test_signal_shorter_than_its_header_is_a_data_error(two_records):
    edit_header(two_records / "A0001.hea", "A0001 12 500 7500", "A0001 12 500 8000")
    exams = read_cpsc(two_records)
    with pytest.raises(DataError, match=r"A0001\.mat: signal of shape \(12, 7500\)"):
        exams.read(np.array([0]))


# ---------------------------------------------------------------------------
# Synthetic writer


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return {
        layout: read_cpsc(
            write_cpsc_sample(tmp_path_factory.mktemp(layout), n_records=24, layout=layout, seed=3)
        )
        for layout in ("challenge2020", "original")
    }


def test_synthetic_challenge2020_round_trips(written):
    exams = written["challenge2020"]
    assert len(exams) == 24 and exams.class_names == CPSC_CLASSES
    assert exams.sample_rate == 500.0 and exams.lead_names == CPSC_LEADS
    assert (exams.labels.sum(axis=1) >= 1).all()
    for dx, y in zip(exams.info["dx"], exams.labels, strict=True):
        assert {c for c, v in zip(CPSC_CLASSES, y, strict=True) if v} == set(dx.split(","))
    x = exams.read(np.arange(24))
    assert x.shape == (24, 5000, 12) and np.isfinite(x).all()
    assert 0.1 < np.abs(x).max() < 32


def test_synthetic_original_layout_holds_the_same_exams(written):
    a, b = written["challenge2020"], written["original"]
    np.testing.assert_array_equal(a.exam_ids, b.exam_ids)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.info["age"], b.info["age"])
    np.testing.assert_array_equal(a.info["sex"], b.info["sex"])
    rows = np.arange(24)
    np.testing.assert_allclose(a.read(rows), b.read(rows), atol=5e-4)  # int16 at 1000/mV


def test_synthetic_challenge2021_uses_snomed_codes(written, tmp_path):
    path = write_cpsc_sample(tmp_path, n_records=24, layout="challenge2021", seed=3)
    assert all(dx_line(h).split(",")[0].isdigit() for h in path.glob("*.hea"))
    exams = read_cpsc(path)
    np.testing.assert_array_equal(exams.labels, written["challenge2020"].labels)
    assert wfdb.rdrecord(str(path / "A0001")).p_signal.shape[1] == 12  # wfdb reads it too


def test_synthetic_writer_rejects_an_unknown_layout(tmp_path):
    with pytest.raises(ValueError, match="layout"):
        write_cpsc_sample(tmp_path, n_records=2, layout="icbeb")


def test_synthetic_classes_are_never_an_impossible_pair():
    from scaling.data.synthetic.cpsc import _sample_classes

    rng = np.random.default_rng(0)
    impossible = [{"RBBB", "LBBB"}, {"AF", "I-AVB"}]  # one bundle-branch block; P waves for PR
    for _ in range(2000):
        classes = set(_sample_classes(rng))
        assert 1 <= len(classes) <= 3
        assert classes == {"Normal"} or "Normal" not in classes
        assert not any(pair <= classes for pair in impossible)


def test_invalid_sample_reads_as_nan(two_records):
    mat = two_records / "A0001.mat"
    val = scipy.io.loadmat(mat)["val"]
    val[2, 100] = -32768
    scipy.io.savemat(mat, {"val": val}, format="4")
    x = read_cpsc(two_records).read(np.array([0]))[0]
    assert np.isnan(x[100, 2]) and np.isnan(x).sum() == 1


def test_mat_without_signal_is_a_data_error(tmp_path):
    scipy.io.savemat(tmp_path / "A0001.mat", {"other": np.zeros(3)})
    (tmp_path / REFERENCE).write_text("Recording,First_label,Second_label,Third_label\nA0001,1,,\n")
    with pytest.raises(DataError, match=r"A0001\.mat: no variable 'val' .* struct 'ECG'"):
        read_cpsc(tmp_path)
