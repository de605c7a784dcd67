"""A small synthetic PTB-XL in the real layout: metadata tables and WFDB records at 500 and
100 Hz, statements drawn by rules that real exams follow, label-dependent waveforms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from scaling.data.preprocess import resample
from scaling.data.ptbxl import _STATEMENT_COLUMNS, DATABASE, PTBXL_LEADS, STATEMENTS
from scaling.data.synthetic.waveforms import compatible, ecg_waveforms

# A few statements as in scp_statements.csv, one value per `_STATEMENT_COLUMNS`.
_SAMPLE_STATEMENTS = {
    "NORM": ("normal ECG", 1.0, None, None, "NORM", "NORM"),
    "IMI": ("inferior myocardial infarction", 1.0, None, None, "MI", "IMI"),
    "NDT": ("non-diagnostic T abnormalities", 1.0, 1.0, None, "STTC", "STTC"),
    "LVH": ("left ventricular hypertrophy", 1.0, None, None, "HYP", "LVH"),
    "1AVB": ("first degree AV block", 1.0, None, None, "CD", "_AVB"),
    "CRBBB": ("complete right bundle branch block", 1.0, None, None, "CD", "CRBBB"),
    "CLBBB": ("complete left bundle branch block", 1.0, None, None, "CD", "CLBBB"),
    "PVC": ("ventricular premature complex", None, 1.0, None, None, None),
    "SR": ("sinus rhythm", None, None, 1.0, None, None),
    "AFIB": ("atrial fibrillation", None, None, 1.0, None, None),
    "SBRAD": ("sinus bradycardia", None, None, 1.0, None, None),
    "STACH": ("sinus tachycardia", None, None, 1.0, None, None),
}
_ABNORMAL = ("IMI", "NDT", "LVH", "1AVB", "CRBBB", "CLBBB")
_RHYTHMS = ("SR", "AFIB", "SBRAD", "STACH")
# Statement -> the waveform class of `ecg_waveforms` that draws it (and its class rules).
_WAVEFORM_CLASS = {
    "IMI": "MI",
    "NDT": "STTC",
    "LVH": "HYP",
    "1AVB": "1dAVb",
    "CRBBB": "RBBB",
    "CLBBB": "LBBB",
    "PVC": "PVC",
    "AFIB": "AF",
    "SBRAD": "SB",
    "STACH": "ST",
}


def write_ptbxl_sample(out: str | Path, *, n_records: int, n_patients: int, seed: int = 0) -> Path:
    """Write a small synthetic PTB-XL in the real layout under `out` and return `out`.

    Metadata tables as PTB-XL's, 10 s WFDB records (format 16, 1000/mV) at 500 Hz and,
    downsampled, at 100 Hz. Every patient has at least one record; folds 1-10 are drawn
    by patient. Waveforms come from `ecg_waveforms`, so labels are learnable.
    """
    if n_records < 1 or not 1 <= n_patients <= n_records:
        raise ValueError(
            f"need n_records >= 1 and 1 <= n_patients <= n_records, got {n_records}, {n_patients}"
        )
    out = Path(out)
    rng = np.random.default_rng(seed)
    patient = rng.permutation(
        np.concatenate([np.arange(n_patients), rng.integers(0, n_patients, n_records - n_patients)])
    )
    fold_of_patient = 1 + rng.permutation(n_patients) * 10 // n_patients
    codes = [_sample_scp_codes(rng) for _ in range(n_records)]

    waveform_classes = tuple(dict.fromkeys(_WAVEFORM_CLASS.values()))
    waveform_labels = np.array(
        [[c in {_WAVEFORM_CLASS.get(k) for k in code} for c in waveform_classes] for code in codes],
        dtype=np.float32,
    )
    signals = ecg_waveforms(waveform_labels, waveform_classes, rate=500, length=5000, rng=rng)

    rows = []
    for i, (code, x) in enumerate(zip(codes, signals, strict=True)):
        ecg_id = i + 1
        folder = f"{ecg_id // 1000 * 1000:05d}"
        hr, lr = f"records500/{folder}/{ecg_id:05d}_hr", f"records100/{folder}/{ecg_id:05d}_lr"
        _write_record(out / hr, x, 500)
        _write_record(out / lr, resample(x[None], 500, 100)[0], 100)
        rows.append(
            {
                "ecg_id": ecg_id,
                "patient_id": float(10000 + patient[i]),
                "age": float(rng.integers(18, 90)),
                "sex": int(rng.integers(0, 2)),
                "scp_codes": repr(code),
                "strat_fold": int(fold_of_patient[patient[i]]),
                "filename_lr": lr,
                "filename_hr": hr,
            }
        )
    pd.DataFrame(rows).to_csv(out / DATABASE, index=False)
    statements = pd.DataFrame.from_dict(
        _SAMPLE_STATEMENTS,
        orient="index",
        columns=list(_STATEMENT_COLUMNS),
    )
    statements.to_csv(out / STATEMENTS)
    return out


def _sample_scp_codes(rng: np.random.Generator) -> dict[str, float]:
    """One exam's statements: a rhythm, NORM or one or two abnormalities, sometimes PVC."""
    likelihood = [50.0, 80.0, 100.0]
    rhythm = str(rng.choice(_RHYTHMS, p=[0.7, 0.1, 0.1, 0.1]))
    if rng.random() < 0.4:
        diagnoses = ["NORM"]
    else:
        k, diagnoses = int(rng.integers(1, 3)), []
        for s in map(str, rng.permutation(_ABNORMAL)):
            if len(diagnoses) < k and compatible(s, [rhythm, *diagnoses], _WAVEFORM_CLASS):
                diagnoses.append(s)
    code = {s: float(rng.choice(likelihood)) for s in diagnoses}
    code[rhythm] = 0.0
    if rng.random() < 0.1:
        code["PVC"] = 0.0
    return code


def _write_record(record: Path, x: np.ndarray, rate: int) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        record.name,
        fs=rate,
        units=["mV"] * len(PTBXL_LEADS),
        sig_name=list(PTBXL_LEADS),
        p_signal=np.clip(x, -32.0, 32.0).astype(np.float64),
        fmt=["16"] * len(PTBXL_LEADS),
        adc_gain=[1000.0] * len(PTBXL_LEADS),
        baseline=[0] * len(PTBXL_LEADS),
        write_dir=str(record.parent),
    )
