"""Data: read datasets into `ExamSet`s, split them by patient, stream preprocessed batches.

- `open_dataset(kind, path, ...)`: a dataset of a kind registered in
  `config.DATASET_KINDS`: CODE family (`code.py`), PTB-XL, CPSC 2018 (`kinds.py`).
- `prepare_splits(exams, test_exams, ...)`: train / val / test by patient, the seeded
  training pool and its nested (or few-shot) subset (`subsets.py`); `scaling.run_data`
  calls it with a run's `DataConfig`.
- `iterate_batches` / `train_stream`: prefetched (x, y) batches (`loader.py`).
- `check_dataset`: scan a whole dataset and list its problems (`check.py`).
- `synthetic/`: synthetic data in the CODE, PTB-XL and CPSC layouts, with learnable labels.
"""

from scaling.data.check import CheckReport, check_dataset
from scaling.data.code import read_code
from scaling.data.dataset import DataError, ExamSet, Split
from scaling.data.kinds import open_dataset
from scaling.data.loader import iterate_batches, train_stream
from scaling.data.subsets import (
    Splits,
    carve_patients,
    few_shot_subset,
    nested_subset,
    pool_order,
    prepare_splits,
)
from scaling.data.synthetic import class_names_for, ecg_waveforms, write_code_dataset

__all__ = [
    "CheckReport",
    "DataError",
    "ExamSet",
    "Split",
    "Splits",
    "carve_patients",
    "check_dataset",
    "class_names_for",
    "ecg_waveforms",
    "few_shot_subset",
    "iterate_batches",
    "nested_subset",
    "open_dataset",
    "pool_order",
    "prepare_splits",
    "read_code",
    "train_stream",
    "write_code_dataset",
]
