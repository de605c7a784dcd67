"""PTB-XL reader on the real sample, its errors, and the synthetic writer."""

import ast
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import wfdb

from scaling.data.dataset import DataError
from scaling.data.ptbxl import DATABASE, LEVELS, STATEMENTS, read_ptbxl
from scaling.data.synthetic import write_ptbxl_sample

PTBXL_LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")


@pytest.fixture(scope="module")
def ptbxl(shared_data):
    return shared_data / "ptbxl_sample"


@pytest.fixture(scope="module")
def lr(ptbxl):
    """The 100 Hz sample (all 434 records on disk), superdiagnostic labels."""
    return read_ptbxl(ptbxl, sampling="100")


def labels_of(exams, ecg_id):
    row = int(np.flatnonzero(exams.exam_ids == ecg_id)[0])
    return {c for c, y in zip(exams.class_names, exams.labels[row], strict=True) if y}


def test_superdiagnostic_labels_follow_the_metadata(lr, ptbxl):
    assert lr.class_names == ("CD", "HYP", "MI", "NORM", "STTC")
    assert labels_of(lr, 1) == {"NORM"}  # {'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}
    assert labels_of(lr, 8) == {"MI"}  # {'IMI': 35.0, 'ABQRS': 0.0, 'SR': 0.0}
    # Exams without a diagnostic statement (atrial flutter, pacemaker only) are left out,
    # as in the PTB-XL benchmark.
    db = pd.read_csv(ptbxl / DATABASE)
    assert len(lr) == len(db) - 10
    assert 17 not in lr.exam_ids and 143 not in lr.exam_ids
    assert lr.labels.dtype == np.float32
    assert set(np.unique(lr.labels)) == {0.0, 1.0}
    assert (lr.labels.sum(axis=1) >= 1).all()


def test_every_exam_matches_its_scp_codes(lr, ptbxl):
    db = pd.read_csv(ptbxl / DATABASE, index_col="ecg_id")
    statements = pd.read_csv(ptbxl / STATEMENTS, index_col=0)
    superclass = statements.loc[statements.diagnostic == 1, "diagnostic_class"]
    for ecg_id, y in zip(lr.exam_ids, lr.labels, strict=True):
        codes = ast.literal_eval(db.loc[ecg_id, "scp_codes"])
        expected = {superclass[k] for k in codes if k in superclass.index}
        assert {c for c, v in zip(lr.class_names, y, strict=True) if v} == expected


@pytest.mark.parametrize(
    ("level", "ecg_id", "expected"),
    [
        ("subdiagnostic", 8, {"IMI"}),
        ("diagnostic", 8, {"IMI"}),
        ("form", 8, {"ABQRS"}),
        ("form", 1, {"LVOLT"}),
        ("rhythm", 1, {"SR"}),
        ("rhythm", 17, {"AFLT", "AFIB"}),
        ("all", 1, {"NORM", "LVOLT", "SR"}),
        ("all", 17, {"AFLT", "ABQRS", "AFIB"}),
    ],
)
def test_other_label_levels(ptbxl, level, ecg_id, expected):
    exams = read_ptbxl(ptbxl, level=level, sampling="100")
    assert labels_of(exams, ecg_id) == expected
    assert list(exams.class_names) == sorted(exams.class_names)
    assert (exams.labels.sum(axis=1) >= 1).all()


def test_metadata_split_and_patients(lr, ptbxl):
    db = pd.read_csv(ptbxl / DATABASE, index_col="ecg_id").loc[lr.exam_ids]
    np.testing.assert_array_equal(lr.patient_ids, db.patient_id.astype(np.int64))
    np.testing.assert_array_equal(lr.info["fold"], db.strat_fold)
    expected_split = np.where(
        db.strat_fold <= 8, "train", np.where(db.strat_fold == 9, "val", "test")
    )
    np.testing.assert_array_equal(lr.info["split"], expected_split)
    np.testing.assert_array_equal(lr.info["age"], db.age.astype(float))
    assert list(lr.info["sex"][:2]) == ["female", "male"]  # ecg_id 1: sex 1, ecg_id 2: sex 0
    np.testing.assert_array_equal(lr.info["is_male"], (db.sex == 0).astype(float))
    # strat_fold is by patient, so a patient never spans two splits
    assert (lr.info.groupby(lr.patient_ids)["split"].nunique() == 1).all()


def test_reads_signals_at_100_hz_in_mv(lr, ptbxl):
    assert lr.sample_rate == 100.0
    assert lr.lead_names == PTBXL_LEADS
    rows = np.array([5, 0, 200])
    x = lr.read(rows)
    assert x.shape == (3, 1000, 12)
    assert x.dtype == np.float32
    for i, row in enumerate(rows):
        expected, _ = wfdb.rdsamp(str(ptbxl / f"records100/00000/{lr.exam_ids[row]:05d}_lr"))
        np.testing.assert_allclose(x[i], expected, rtol=1e-6)
    assert lr.read(np.array([], dtype=np.int64)).shape == (0, 0, 12)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(lr.reader)).read(rows), x)


def test_500_hz_leaves_out_missing_records_with_a_warning(ptbxl):
    with pytest.warns(UserWarning, match=r"419 of 434 records .* no 500 Hz files"):
        hr = read_ptbxl(ptbxl, sampling="500")
    np.testing.assert_array_equal(hr.exam_ids, [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16])
    assert hr.sample_rate == 500.0
    assert hr.class_names == ("MI", "NORM")
    assert labels_of(hr, 8) == {"MI"}
    x = hr.read(np.arange(len(hr)))
    assert x.shape == (15, 5000, 12)
    assert np.isfinite(x).all()
    assert 0.1 < np.abs(x).max() < 20  # mV, not digital units


def test_bad_arguments(ptbxl):
    with pytest.raises(ValueError, match="superdiagnostic"):
        read_ptbxl(ptbxl, level="superclass")
    with pytest.raises(ValueError, match="sampling"):
        read_ptbxl(ptbxl, sampling="250")


@pytest.fixture
def tables(ptbxl, tmp_path):
    """A copy of the sample's two CSV tables (no records) to break."""
    for name in (DATABASE, STATEMENTS):
        shutil.copy(ptbxl / name, tmp_path / name)
    return tmp_path


def test_missing_database_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"ptbxl_database\.csv.*not found"):
        read_ptbxl(tmp_path)


def test_missing_column_is_a_data_error(tables):
    db = pd.read_csv(tables / DATABASE).drop(columns="strat_fold")
    db.to_csv(tables / DATABASE, index=False)
    with pytest.raises(DataError, match=r"ptbxl_database\.csv: missing column\(s\) strat_fold"):
        read_ptbxl(tables)


def test_missing_statements_column_is_a_data_error(tables):
    st = pd.read_csv(tables / STATEMENTS, index_col=0).drop(columns="diagnostic_class")
    st.to_csv(tables / STATEMENTS)
    with pytest.raises(
        DataError, match=r"scp_statements\.csv: missing column\(s\) diagnostic_class"
    ):
        read_ptbxl(tables)


def test_malformed_scp_codes_is_a_data_error(tables):
    db = pd.read_csv(tables / DATABASE)
    db.loc[db.ecg_id == 5, "scp_codes"] = "{'NORM': 100.0"
    db.to_csv(tables / DATABASE, index=False)
    with pytest.raises(DataError, match=r"ptbxl_database\.csv: field scp_codes of ecg_id 5"):
        read_ptbxl(tables)


def test_bad_fold_is_a_data_error(tables):
    db = pd.read_csv(tables / DATABASE)
    db.loc[db.ecg_id == 3, "strat_fold"] = 11
    db.to_csv(tables / DATABASE, index=False)
    with pytest.raises(DataError, match=r"strat_fold of ecg_id 3 is 11"):
        read_ptbxl(tables)


def test_no_records_on_disk_is_a_data_error(tables):
    with pytest.warns(UserWarning, match="434 of 434"), pytest.raises(DataError, match="no PTB-XL"):
        read_ptbxl(tables)


# ---------------------------------------------------------------------------
# Synthetic writer


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_ptbxl_sample(tmp_path_factory.mktemp("ptbxl"), n_records=20, n_patients=12, seed=1)


@pytest.mark.parametrize("sampling", ["500", "100"])
def test_synthetic_sample_round_trips(synthetic, sampling):
    exams = read_ptbxl(synthetic, sampling=sampling)
    db = pd.read_csv(synthetic / DATABASE)
    statements = pd.read_csv(synthetic / STATEMENTS, index_col=0)
    assert len(exams) == len(db) == 20
    assert len(np.unique(exams.patient_ids)) == 12
    assert set(exams.class_names) <= {"NORM", "MI", "STTC", "HYP", "CD"}
    superclass = statements.loc[statements.diagnostic == 1, "diagnostic_class"]
    for codes, y in zip(db.scp_codes, exams.labels, strict=True):
        expected = {superclass[k] for k in ast.literal_eval(codes) if k in superclass.index}
        assert {c for c, v in zip(exams.class_names, y, strict=True) if v} == expected
    assert (exams.info.groupby(exams.patient_ids)["fold"].nunique() == 1).all()
    assert set(exams.info["fold"]) == set(range(1, 11))
    assert exams.sample_rate == float(sampling)
    assert exams.lead_names == PTBXL_LEADS
    x = exams.read(np.arange(len(exams)))
    assert x.shape == (20, 10 * int(sampling), 12)
    assert np.isfinite(x).all() and 0.1 < np.abs(x).max() < 32


def test_synthetic_sample_has_every_level(synthetic):
    for level in LEVELS:
        assert len(read_ptbxl(synthetic, level=level)) > 0


def test_synthetic_sample_is_seeded(tmp_path):
    a = write_ptbxl_sample(tmp_path / "a", n_records=4, n_patients=2, seed=5)
    b = write_ptbxl_sample(tmp_path / "b", n_records=4, n_patients=2, seed=5)
    c = write_ptbxl_sample(tmp_path / "c", n_records=4, n_patients=2, seed=6)
    assert (a / DATABASE).read_text() == (b / DATABASE).read_text()
    rows = np.arange(4)
    np.testing.assert_array_equal(read_ptbxl(a).read(rows), read_ptbxl(b).read(rows))
    assert not np.array_equal(read_ptbxl(a).read(rows), read_ptbxl(c).read(rows))


def test_synthetic_sample_rejects_more_patients_than_records(tmp_path):
    with pytest.raises(ValueError, match="n_patients"):
        write_ptbxl_sample(tmp_path, n_records=3, n_patients=5)


@pytest.fixture
def tiny(tmp_path):
    return write_ptbxl_sample(tmp_path, n_records=2, n_patients=2, seed=0)


def test_invalid_sample_reads_as_nan_like_wfdb(tiny):
    dat = tiny / "records500/00000/00002_hr.dat"
    digital = np.fromfile(dat, "<i2")
    digital[[0, 13]] = -32768  # sample 0 lead 0, sample 1 lead 1
    digital.tofile(dat)
    x = read_ptbxl(tiny).read(np.array([1]))[0]
    expected, _ = wfdb.rdsamp(str(dat.with_suffix("")))
    np.testing.assert_array_equal(np.isnan(x), np.isnan(expected))
    assert np.isnan(x[0, 0]) and np.isnan(x[1, 1]) and np.isnan(x).sum() == 2
    np.testing.assert_allclose(x, expected, rtol=1e-6)


def test_truncated_signal_file_is_a_data_error(tiny):
    dat = tiny / "records500/00000/00001_hr.dat"
    dat.write_bytes(dat.read_bytes()[:-24])
    exams = read_ptbxl(tiny)
    with pytest.raises(DataError, match=r"00001_hr\.dat: 59988 samples; the header says 5000 x 12"):
        exams.read(np.array([0]))


def test_other_signal_format_is_a_data_error(tiny):
    hea = tiny / "records500/00000/00001_hr.hea"
    hea.write_text(hea.read_text().replace(".dat 16 ", ".dat 212 "))
    exams = read_ptbxl(tiny)
    with pytest.raises(DataError, match=r"00001_hr\.hea: signals in format\(s\) 212"):
        exams.read(np.array([0]))


def test_synthetic_statements_always_include_a_diagnosis_and_no_impossible_pair():
    from scaling.data.synthetic.ptbxl import _sample_scp_codes

    rng = np.random.default_rng(0)
    impossible = [{"CRBBB", "CLBBB"}, {"AFIB", "1AVB"}, {"SBRAD", "STACH"}, {"AFIB", "SR"}]
    seen = set()
    for _ in range(2000):
        code = _sample_scp_codes(rng)
        seen |= set(code)
        assert set(code) & {"NORM", "IMI", "NDT", "LVH", "1AVB", "CRBBB", "CLBBB"}
        assert not any(pair <= set(code) for pair in impossible)
    assert {"CRBBB", "CLBBB", "AFIB", "1AVB"} <= seen  # each of them does occur


def test_the_config_refuses_exactly_the_label_levels_the_reader_does_not_know():
    from scaling.config import CHOICES

    assert CHOICES["data.label_level"] == LEVELS
