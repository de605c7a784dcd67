"""A small synthetic CPSC 2018 in its three layouts (Challenge 2020 and 2021 `.mat` + `.hea`,
the original release's `.mat` structs with REFERENCE.csv), label-dependent waveforms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import wfdb

from scaling.data.cpsc import _LABEL_COLUMNS, CPSC_CLASSES, CPSC_LEADS, CPSC_RATE, REFERENCE
from scaling.data.synthetic.waveforms import compatible, ecg_waveforms

LAYOUTS = ("challenge2020", "challenge2021", "original")
# Each class's main SNOMED CT code, for the 2021 layout.
_SNOMED_OF_CLASS = {
    "Normal": "426783006",
    "AF": "164889003",
    "I-AVB": "270492004",
    "LBBB": "164909002",
    "RBBB": "59118001",
    "PAC": "284470004",
    "PVC": "164884008",
    "STD": "429622005",
    "STE": "164931005",
}
_T_WAVE_ABNORMAL = "164934002"  # a SNOMED code outside the nine classes
# CPSC class -> the waveform class of `ecg_waveforms` that draws it (and its class rules).
_WAVEFORM_CLASS = {"I-AVB": "1dAVb", "AF": "AF", "LBBB": "LBBB", "RBBB": "RBBB"}
_ABNORMAL = CPSC_CLASSES[1:]


def write_cpsc_sample(
    out: str | Path, *, n_records: int, layout: str = "challenge2020", seed: int = 0
) -> Path:
    """Write a small synthetic CPSC 2018 under `out` and return `out`.

    `layout`: "challenge2020" (`.mat` + `.hea`, Dx with class names), "challenge2021" (Dx with
    SNOMED CT codes, sometimes one outside the classes) or "original" (the 2018 release:
    `.mat` structs and REFERENCE.csv). Records are 6, 8 or 10 s at 500 Hz, with one to three
    classes ("Normal" alone or up to three abnormalities) and waveforms from `ecg_waveforms`.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"CPSC layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if n_records < 1:
        raise ValueError(f"n_records must be at least 1, got {n_records}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    dx = [_sample_classes(rng) for _ in range(n_records)]
    lengths = rng.choice([3000, 4000, 5000], size=n_records)

    waveform_names = tuple(_WAVEFORM_CLASS.get(c, c) for c in _ABNORMAL)
    waveform_labels = np.array([[c in d for c in _ABNORMAL] for d in dx], dtype=np.float32)
    signals = ecg_waveforms(waveform_labels, waveform_names, rate=CPSC_RATE, length=5000, rng=rng)
    reference = []
    for i, (classes, x, n) in enumerate(zip(dx, signals, lengths, strict=True)):
        name = f"A{i + 1:04d}"
        age, sex = int(rng.integers(18, 90)), str(rng.choice(["Male", "Female"]))
        mv = np.clip(x[(5000 - n) // 2 :][:n], -32.0, 32.0)  # the centre of 10 s
        if layout == "original":
            ecg = {"sex": sex, "age": age, "data": mv.T.astype(np.float64)}
            scipy.io.savemat(out / f"{name}.mat", {"ECG": ecg})
            numbers = [CPSC_CLASSES.index(c) + 1 for c in classes]
            reference.append([name, *numbers, *[None] * (3 - len(numbers))])
            continue
        if layout == "challenge2020":
            codes = list(classes)
        else:
            codes = [_SNOMED_OF_CLASS[c] for c in classes]
            if rng.random() < 0.3:
                codes.append(_T_WAVE_ABNORMAL)
        comments = [f"Age: {age}", f"Sex: {sex}", f"Dx: {','.join(codes)}"]
        comments += ["Rx: Unknown", "Hx: Unknown", "Sx: Unknown"]
        _write_challenge_record(out, name, np.round(mv * 1000).astype(np.int16), comments)
    if layout == "original":
        columns = ["Recording", *_LABEL_COLUMNS]
        pd.DataFrame(reference, columns=columns).astype(object).to_csv(out / REFERENCE, index=False)
    return out


def _sample_classes(rng: np.random.Generator) -> list[str]:
    """One exam's classes: "Normal" alone, or one to three compatible abnormalities."""
    if rng.random() < 0.25:
        return ["Normal"]
    k, classes = int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1])), []
    for c in map(str, rng.permutation(_ABNORMAL)):
        if len(classes) < k and compatible(c, classes, _WAVEFORM_CLASS):
            classes.append(c)
    return classes


def _write_challenge_record(out: Path, name: str, digital: np.ndarray, comments: list[str]) -> None:
    """`name.mat` (MATLAB v4, `val` int16 leads x samples, data at byte 24) and `name.hea`."""
    n = len(CPSC_LEADS)
    scipy.io.savemat(out / f"{name}.mat", {"val": digital.T}, format="4")
    record = wfdb.Record(
        record_name=name,
        n_sig=n,
        fs=CPSC_RATE,
        sig_len=len(digital),
        file_name=[f"{name}.mat"] * n,
        fmt=["16"] * n,
        byte_offset=[24] * n,
        adc_gain=[1000.0] * n,
        baseline=[0] * n,
        units=["mV"] * n,
        adc_res=[16] * n,
        adc_zero=[0] * n,
        block_size=[0] * n,
        sig_name=list(CPSC_LEADS),
        comments=comments,
        d_signal=digital,
    )
    record.set_d_features()
    record.wrheader(write_dir=str(out))
