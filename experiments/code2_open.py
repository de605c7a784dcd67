"""CODE-II-open: 15,000 patients, 12k for training and 3k for validation (20% of patients).

The test set is CODE-II-test (`data.test_path`); everything else as `experiments/code2.py`.
"""

from scaling.config import RunConfig, override
from scaling.sweep import load_experiment


def get_config() -> RunConfig:
    return override(
        load_experiment("code2"),
        {"name": "code2_open", "data.path": "data/code2_open", "val_fraction": 0.2},
    )
