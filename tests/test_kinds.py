"""Dataset kinds: a new kind is one module and one line in `config.DATASET_KINDS`.

The test writes a fourth, toy kind (tracings in one `.npy`, labels in a CSV), registers it
with that one line, and then detects, checks, opens and trains on it like the real kinds.
"""

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config

from scaling import config
from scaling.config import ConfigError, validate
from scaling.data import DataError, check_dataset, open_dataset
from scaling.data.kinds import detect_kind
from scaling.data.synthetic import ecg_waveforms
from scaling.train import train_and_evaluate

TOY_KIND = '''
"""A toy dataset kind: tracings.npy (exams, samples, 12) at 250 Hz and labels.csv."""

from pathlib import Path

import numpy as np
import pandas as pd

from scaling.config import LEADS_12
from scaling.data.dataset import DataError, ExamSet, Problems, ReadOptions

LAYOUT = "labels.csv and tracings.npy (a toy kind)"


def looks_like(path: Path) -> bool:
    return (path / "tracings.npy").is_file()


class NpyReader:
    def __init__(self, file: str) -> None:
        self.file = file

    def read(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(np.load(self.file, mmap_mode="r")[rows], dtype=np.float32)


def read(path: Path, options: ReadOptions, problems: Problems) -> ExamSet:
    if not (path / "labels.csv").is_file():
        raise DataError(f"{path / 'labels.csv'}: missing")
    table = pd.read_csv(path / "labels.csv")
    classes = tuple(c for c in table.columns if c not in ("exam_id", "patient_id"))
    return ExamSet(
        exam_ids=table["exam_id"].to_numpy(),
        patient_ids=table["patient_id"].to_numpy(),
        labels=table[list(classes)].to_numpy(np.float32),
        class_names=classes,
        sample_rate=250.0,
        lead_names=LEADS_12,
        reader=NpyReader(str(path / "tracings.npy")),
        info=table[["patient_id"]],
        source=str(path),
    )
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy kind registered (one line) and a dataset of it with learnable labels."""
    (tmp_path / "toy_kind.py").write_text(TOY_KIND)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(config.DATASET_KINDS, "toy", "toy_kind")  # the one registry line
    rng = np.random.default_rng(0)
    n = 160
    labels = np.zeros((n, 2), np.int8)
    labels[rng.permutation(n)[:60], 0] = 1  # AF in 60 exams, RBBB in another 50
    labels[np.flatnonzero(labels[:, 0] == 0)[:50], 1] = 1
    folder = tmp_path / "toy_data"
    folder.mkdir()
    np.save(folder / "tracings.npy", ecg_waveforms(labels, ("AF", "RBBB"), rate=250.0,
                                                   length=2500, rng=rng))  # fmt: skip
    table = pd.DataFrame({"exam_id": np.arange(n) + 1, "patient_id": np.arange(n) // 2 + 1})
    table[["AF", "RBBB"]] = labels
    table.to_csv(folder / "labels.csv", index=False)
    return folder


def test_a_fourth_kind_is_one_module_and_one_registry_line(toy, tmp_path):
    assert detect_kind(toy) == "toy"
    exams = open_dataset("toy", str(toy))
    assert exams.class_names == ("AF", "RBBB") and len(exams) == 160
    assert exams.read(np.array([3, 1])).shape == (2, 2500, 12)
    rbbb = open_dataset("toy", str(toy), classes=("RBBB",))
    np.testing.assert_array_equal(rbbb.labels[:, 0], exams.labels[:, 1])
    missing = r"toy_data: class column\(s\) SB not found; the dataset's classes are AF, RBBB"
    with pytest.raises(DataError, match=missing):
        open_dataset("toy", str(toy), classes=("SB",))
    with pytest.raises(DataError, match=r"labels\.csv: missing"):
        open_dataset("toy", str(tmp_path))

    report = check_dataset(str(toy))
    assert report.summary["kind"] == "toy" and report.problems == []
    assert report.summary["exams"] == 160 and report.summary["rate"] == 250.0

    cfg = tiny_config(toy, **{"data.kind": "toy", "classes": ("AF", "RBBB"), "max_steps": 20})
    assert validate(cfg) is cfg
    with pytest.raises(ConfigError, match=r"'data\.kind' must be one of code, ptbxl, cpsc, toy"):
        validate(tiny_config(toy, **{"data.kind": "tyo"}))
    result = train_and_evaluate(cfg, tmp_path / "run")
    assert result["train_exams"] > 0 and result["steps"] == 20
    assert set(result["metrics"]["test"]) >= {"AF", "RBBB", "macro"}
