"""Transfer to CPSC 2018: the same grid as `transfer_ptbxl` (pretraining size x shots x mode)."""

from dataclasses import replace

from scaling.sweep import Sweep, load_sweep


def get_sweep() -> Sweep:
    return replace(load_sweep("transfer_ptbxl"), name="transfer_cpsc", experiment="transfer_cpsc")
