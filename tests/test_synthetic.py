"""Synthetic ECGs follow their labels; synthetic CODE datasets have the promised shape."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import signal

from scaling.config import CODE15_CLASSES, LEADS_12
from scaling.data.synthetic import (
    class_names_for,
    compatible,
    ecg_waveforms,
    sample_labels,
    write_code_dataset,
)
from scaling.data.synthetic.waveforms import generic_feature

RATE = 400.0


def waveforms(name: str | None, n: int = 24, seed: int = 0, classes=CODE15_CLASSES):
    labels = np.zeros((n, len(classes)), np.int8)
    if name is not None:
        labels[:, classes.index(name)] = 1
    return ecg_waveforms(labels, classes, rate=RATE, length=4096, rng=np.random.default_rng(seed))


def r_peaks(x: np.ndarray) -> np.ndarray:
    """R-peak times (s) in lead II: band-pass 5-30 Hz, then scipy's find_peaks."""
    sos = signal.butter(2, [5, 30], btype="bandpass", fs=RATE, output="sos")
    lead = signal.sosfiltfilt(sos, x[:, LEADS_12.index("DII")])
    peaks, _ = signal.find_peaks(lead, height=0.4 * lead.max(), distance=int(0.3 * RATE))
    return peaks / RATE


def heart_rate(x: np.ndarray) -> float:
    return 60.0 / float(np.median(np.diff(r_peaks(x))))


def rr_variation(x: np.ndarray) -> float:
    rr = np.diff(r_peaks(x))
    return float(rr.std() / rr.mean())


def test_rates_follow_sinus_bradycardia_and_tachycardia():
    assert all(heart_rate(x) < 60 for x in waveforms("SB"))
    assert all(heart_rate(x) > 100 for x in waveforms("ST"))
    assert all(60 <= heart_rate(x) <= 100 for x in waveforms(None))


def test_atrial_fibrillation_has_irregular_rr_intervals():
    af = [rr_variation(x) for x in waveforms("AF")]
    sinus = [rr_variation(x) for x in waveforms(None)]
    assert min(af) > max(sinus) and np.median(af) > 3 * np.median(sinus)


def qrs_duration(x: np.ndarray) -> float:
    """QRS width (s) of the averaged beat: where the slope summed over leads is above 20%."""
    sos = signal.butter(2, [1, 40], btype="bandpass", fs=RATE, output="sos")
    slope = np.abs(np.diff(signal.sosfiltfilt(sos, x, axis=0), axis=0)).sum(axis=1)
    slope = np.convolve(slope, np.ones(8) / 8, "same")
    peaks, _ = signal.find_peaks(slope, height=0.5 * slope.max(), distance=int(0.3 * RATE))
    half = int(0.2 * RATE)
    peaks = peaks[(peaks > half) & (peaks < len(slope) - half)]
    beat = np.mean([slope[p - half : p + half] for p in peaks], axis=0)
    above = np.flatnonzero(beat > 0.2 * beat.max())
    return (above[-1] - above[0]) / RATE


def test_bundle_branch_blocks_widen_the_qrs():
    assert all(qrs_duration(x) < 0.11 for x in waveforms(None))
    assert all(qrs_duration(x) > 0.12 for x in waveforms("RBBB"))
    assert all(qrs_duration(x) > 0.12 for x in waveforms("LBBB"))


def test_a_generic_class_changes_only_its_own_lead():
    classes = class_names_for(6 + 31)  # generic classes 0..30: ST, T and U-wave features
    plain = waveforms(None, n=4, seed=9, classes=classes)
    for index in (0, 13, 30):
        marked = waveforms(classes[6 + index], n=4, seed=9, classes=classes)  # same draws
        changed = np.flatnonzero(np.abs(marked - plain).max(axis=(0, 1)) > 0.05)
        assert changed.tolist() == [generic_feature(index)[1]]
    assert len({generic_feature(i) for i in range(72)}) == 72


def test_signals_are_centred_and_zero_padded_like_code():
    x = waveforms(None, n=3)
    assert x.shape == (3, 4096, 12) and x.dtype == np.float32
    assert not x[:, :48].any() and not x[:, -48:].any()
    assert (np.abs(x[:, 48:-48]).max(axis=1) > 0).all()
    short = ecg_waveforms(
        np.zeros((2, 6)), CODE15_CLASSES, rate=RATE, length=1000, rng=np.random.default_rng(0)
    )
    assert short.shape == (2, 1000, 12) and np.abs(short[:, 0]).max() > 0  # 2.5 s, all signal


def test_impossible_label_pairs_are_refused():
    labels = np.zeros((1, 6))
    labels[0, [CODE15_CLASSES.index("SB"), CODE15_CLASSES.index("ST")]] = 1
    with pytest.raises(ValueError, match="SB\\+ST"):
        ecg_waveforms(labels, CODE15_CLASSES, rate=RATE, length=4096, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="labels must be"):
        ecg_waveforms(
            np.zeros((1, 3)), CODE15_CLASSES, rate=RATE, length=64, rng=np.random.default_rng(0)
        )


def test_labels_are_long_tailed_multi_label_and_consistent():
    classes = (*CODE15_CLASSES, "normal")
    labels = sample_labels(20_000, classes, np.random.default_rng(0))
    prevalence = labels[:, :6].mean(axis=0)
    assert prevalence.max() > 0.15 and 0.01 < prevalence.min() < 0.03
    assert prevalence.max() / prevalence.min() > 5
    assert (labels[:, :6].sum(axis=1) >= 2).mean() > 0.02  # multi-label exams exist
    np.testing.assert_array_equal(labels[:, 6], labels[:, :6].sum(axis=1) == 0)
    # every sampled row is one ecg_waveforms accepts (no impossible pair)
    ecg_waveforms(labels[:300], classes, rate=100.0, length=100, rng=np.random.default_rng(0))


def test_written_dataset_has_the_code_layout(tmp_path):
    classes = (*class_names_for(8), "normal")
    write_code_dataset(tmp_path, n_exams=50, n_patients=20, classes=classes, length=512, parts=3)
    table = pd.read_csv(tmp_path / "exams.csv")
    assert list(table.columns) == [
        "exam_id", "age", "is_male", *classes, "patient_id", "trace_file",
    ]  # fmt: skip
    assert table["exam_id"].is_unique and (table["exam_id"] > 0).all()
    assert table["patient_id"].nunique() == 20 and table["age"].between(18, 90).all()
    assert set(table["is_male"]) <= {0, 1}
    np.testing.assert_array_equal(table["normal"], table[list(classes[:-1])].sum(axis=1) == 0)
    ids = []
    for p in range(3):
        with h5py.File(tmp_path / f"exams_part{p}.hdf5") as f:
            assert f["tracings"].dtype == np.float32 and f["tracings"].shape[1:] == (512, 12)
            assert f["tracings"].chunks == (1, 512, 12)
            ids.extend(f["exam_id"][:].tolist())
            assert set(f["exam_id"][:]) == set(
                table.loc[table.trace_file == f"exams_part{p}.hdf5", "exam_id"]
            )
    assert sorted(ids) == sorted(table["exam_id"])
    assert not list(tmp_path.glob(".*tmp"))


def test_writing_is_deterministic_under_the_seed(tmp_path):
    def written(name, seed):
        write_code_dataset(tmp_path / name, n_exams=30, n_patients=12, length=256, seed=seed)
        with h5py.File(tmp_path / name / "exams_part1.hdf5") as f:
            return (tmp_path / name / "exams.csv").read_text(), f["tracings"][:]

    csv, x = written("a", 4)
    csv_again, x_again = written("b", 4)
    csv_other, x_other = written("c", 5)
    assert csv == csv_again and np.array_equal(x, x_again)
    assert csv != csv_other and not np.array_equal(x, x_other)


def test_rewriting_replaces_the_previous_dataset(tmp_path):
    write_code_dataset(tmp_path, n_exams=30, n_patients=10, length=64, parts=3)
    write_code_dataset(tmp_path, n_exams=20, n_patients=10, length=64, parts=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "exams.csv", "exams_part0.hdf5", "exams_part1.hdf5",
    ]  # fmt: skip
    assert len(pd.read_csv(tmp_path / "exams.csv")) == 20


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_patients <= n_exams"):
        write_code_dataset(tmp_path, n_exams=5, n_patients=6)
    with pytest.raises(ValueError, match="distinct"):
        write_code_dataset(tmp_path, n_exams=5, n_patients=5, classes=("AF", "AF"))
    with pytest.raises(ValueError, match="n_classes"):
        class_names_for(0)
    assert class_names_for(8) == (*CODE15_CLASSES, "class07", "class08")
    assert not list(tmp_path.iterdir())


def test_one_class_rule_for_every_writer_through_the_waveform_class_that_draws_it():
    assert not compatible("RBBB", ["SB", "LBBB"]) and compatible("RBBB", ["SB", "1dAVb"])
    assert not compatible("AF", ["1dAVb"]) and not compatible("1dAVb", ["AF"])
    ptbxl = {"AFIB": "AF", "1AVB": "1dAVb", "SR": "SR"}
    assert not compatible("1AVB", ["AFIB"], ptbxl) and compatible("1AVB", ["SR"], ptbxl)
    assert compatible("MI", ["STTC", "HYP"])  # classes without a rule go with anything
