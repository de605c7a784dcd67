"""CODE-15% data scaling (public): 6 classes, the Ribeiro ResNet, 400 Hz x 4096 samples, 12 leads.

Point `data.path` at the folder holding `exams.csv` and `exams_part*.hdf5`
(https://zenodo.org/records/4916206). Validation and test patients are carved out
by `split_seed`; training follows Ribeiro et al. (2020): Adam 1e-3, batch 64,
LR x0.1 after 7 epochs without improvement, early stopping, at most 50 epochs.
"""

from scaling.config import CODE15_CLASSES, DataConfig, EvalConfig, RunConfig, TrainConfig


def get_config() -> RunConfig:
    return RunConfig(
        name="code15",
        data=DataConfig(
            kind="code",
            path="data/code15",
            classes=CODE15_CLASSES,
            val_fraction=0.05,
            test_fraction=0.05,
        ),
        train=TrainConfig(
            batch_size=64,
            lr=1e-3,
            schedule="plateau",
            plateau_patience=7,
            early_stopping=10,
            max_epochs=50,
        ),
        eval=EvalConfig(bootstrap=1000),
    )
