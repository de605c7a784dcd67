"""Synthetic data in the real on-disk layouts, with learnable labels, for tests and the demo.

- `waveforms.py`: 12-lead ECGs whose morphology follows their labels (`ecg_waveforms`) and
  the class rules every writer shares (`CONFLICTS`, `compatible`, exclusive "normal").
- `code.py`: the CODE layout (`write_code_dataset`), `ptbxl.py`: PTB-XL
  (`write_ptbxl_sample`), `cpsc.py`: CPSC 2018 in its three layouts (`write_cpsc_sample`).
"""

from scaling.data.synthetic.code import sample_labels, write_code_dataset
from scaling.data.synthetic.cpsc import write_cpsc_sample
from scaling.data.synthetic.ptbxl import write_ptbxl_sample
from scaling.data.synthetic.waveforms import class_names_for, compatible, ecg_waveforms

__all__ = [
    "class_names_for",
    "compatible",
    "ecg_waveforms",
    "sample_labels",
    "write_code_dataset",
    "write_cpsc_sample",
    "write_ptbxl_sample",
]
