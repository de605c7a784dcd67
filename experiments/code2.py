"""CODE-II data scaling, the paper's setting: 66 classes, Ribeiro ResNet, 400 Hz x 4096, 12 leads.

`classes=()` takes every 0/1 class column of `exams.csv` (the 66 CODE-II classes), in
file order; pass a list with `--set classes=A,B,...` to choose. CODE-II-test is the test
set when `data.test_path` points at it (same layout); otherwise a patient-level test split
is carved. `--set leads=DI,DII,V1,V2,V3,V4,V5,V6` gives the 8 independent leads.
"""

from scaling.config import DataConfig, EvalConfig, RunConfig, TrainConfig


def get_config() -> RunConfig:
    return RunConfig(
        name="code2",
        data=DataConfig(
            kind="code",
            path="data/code2",
            test_path="data/code2_test",
            classes=(),
            val_fraction=0.02,
            test_fraction=0.0,
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
