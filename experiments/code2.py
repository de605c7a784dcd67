"""CODE-II data scaling, the paper's setting: 66 classes, Ribeiro ResNet, 400 Hz x 4096, 12 leads.

Training as `experiments/code15.py`. `classes=()` takes every 0/1 class column of
`exams.csv` (the 66 CODE-II classes), in file order; pass a list with
`--set classes=A,B,...` to choose. CODE-II-test is the test set when `data.test_path`
points at it (same layout); `--set test_path= --set test_fraction=0.05` carves a patient-level
test split instead.
`--set leads=DI,DII,V1,V2,V3,V4,V5,V6` gives the 8 independent leads.
"""

from scaling.config import RunConfig, override
from scaling.sweep import load_experiment


def get_config() -> RunConfig:
    return override(
        load_experiment("code15"),
        {
            "name": "code2",
            "data.path": "data/code2",
            "test_path": "data/code2_test",
            "classes": (),
            "val_fraction": 0.02,
            "test_fraction": 0.0,
        },
    )
