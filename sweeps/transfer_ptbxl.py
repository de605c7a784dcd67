"""Transfer to PTB-XL: pretraining subset_size x target shots x mode.

Each pretrained model is a finished run of the `code15` sweep in the same store, picked
by its config (`code15:subset_size=...,data_seed=0`). Shots k = 1..100 positives per
class, and 0 = all training folds; fine-tuning, linear probe, and training from scratch
(the baseline, which ignores the pretrained run and so runs once per k).
"""

from scaling.sweep import PROFILES, Sweep

PRETRAINING = [1000, 10_000, 100_000, 0]
SHOTS = [1, 2, 5, 10, 20, 50, 100, 0]


def get_sweep() -> Sweep:
    return Sweep(
        name="transfer_ptbxl",
        experiment="transfer_ptbxl",
        axes=(
            {"pretrained": [f"code15:subset_size={n},data_seed=0" for n in PRETRAINING]},
            {"shots": SHOTS},
            {"mode": ["finetune", "linear_probe", "scratch"]},
            {"data_seed": [0, 1, 2]},
        ),
        profiles=PROFILES,
        profile="gpu_shared",
    )
