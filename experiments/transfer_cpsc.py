"""Transfer to CPSC 2018: 9 classes, 500 Hz -> 400 Hz, 4096 samples, patients carved by seed.

Reads the original release (`.mat` + `.hea` + `REFERENCE.csv`) or the PhysioNet/CinC
Challenge 2020/2021 layout (`#Dx:` in the headers). Otherwise as `transfer_ptbxl`.
"""

from scaling.config import RunConfig, override
from scaling.sweep import load_experiment


def get_config() -> RunConfig:
    return override(
        load_experiment("transfer_ptbxl"),
        {
            "name": "transfer_cpsc",
            "kind": "cpsc",
            "data.path": "data/cpsc2018",
            "val_fraction": 0.1,
            "test_fraction": 0.2,
        },
    )
