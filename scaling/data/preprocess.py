"""Signal preprocessing, the same for every dataset: leads, rate, length, filters, scale."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from scaling.data.dataset import DataError

# Limb-lead spellings used by CODE (DI, DII, DIII) and PhysioNet (I, II, III).
_ALIASES = {"I": "DI", "II": "DII", "III": "DIII"}


def canonical_lead(name: str) -> str:
    """Upper-case lead name with PhysioNet limb leads mapped to CODE's spelling."""
    up = name.strip().upper()
    return _ALIASES.get(up, up)


def lead_indices(source_leads: tuple[str, ...], target_leads: tuple[str, ...]) -> np.ndarray:
    """Column of each target lead in the source, matched case-insensitively by name."""
    where = {canonical_lead(n): i for i, n in enumerate(source_leads)}
    missing = [t for t in target_leads if canonical_lead(t) not in where]
    if missing:
        raise DataError(
            f"lead(s) {', '.join(missing)} not found; the data has {', '.join(source_leads)}"
        )
    return np.array([where[canonical_lead(t)] for t in target_leads], dtype=np.int64)


def resample(x: np.ndarray, source_rate: float, target_rate: float) -> np.ndarray:
    """Polyphase resampling along axis 1 (samples)."""
    if source_rate == target_rate:
        return x
    from scipy import signal  # imported where used: 0.8 s that most processes never need

    ratio = Fraction(target_rate / source_rate).limit_denominator(1000)
    y = signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=1)
    return y.astype(np.float32, copy=False)


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Centred zero-pad or crop along axis 1 to `length` samples."""
    n = x.shape[1]
    if n == length:
        return x
    if n > length:
        start = (n - length) // 2
        return x[:, start : start + length]
    before = (length - n) // 2
    return np.pad(x, ((0, 0), (before, length - n - before), (0, 0)))


def stack_centred(signals: Sequence[np.ndarray]) -> np.ndarray:
    """Stack (samples, leads) records of different lengths, each centred in the longest."""
    length = max(s.shape[0] for s in signals)
    return np.stack([fit_length(s[None], length)[0] for s in signals]).astype(np.float32)


def highpass(x: np.ndarray, rate: float, cutoff_hz: float) -> np.ndarray:
    """Zero-phase Butterworth high-pass (baseline wander)."""
    from scipy import signal

    sos = signal.butter(2, cutoff_hz, btype="highpass", fs=rate, output="sos")
    return signal.sosfiltfilt(sos, x, axis=1).astype(np.float32)


def notch(x: np.ndarray, rate: float, freq_hz: float, quality: float = 30.0) -> np.ndarray:
    """Zero-phase IIR notch at the powerline frequency."""
    from scipy import signal

    b, a = signal.iirnotch(freq_hz, quality, fs=rate)
    return signal.filtfilt(b, a, x, axis=1).astype(np.float32)


def preprocess(
    x: np.ndarray,
    source_rate: float,
    source_leads: tuple[str, ...],
    *,
    sample_rate: float,
    length: int,
    leads: tuple[str, ...],
    highpass_hz: float = 0.0,
    notch_hz: float = 0.0,
    scale: float = 1.0,
) -> np.ndarray:
    """Raw batch (n, samples, source leads) -> model input (n, length, len(leads)) float32.

    Order: select leads, filter at the source rate, resample, centre to length, scale.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise DataError(f"expected signals of shape (exams, samples, leads), got {x.shape}")
    columns = lead_indices(source_leads, leads)
    if not np.array_equal(columns, np.arange(x.shape[2])):
        x = np.take(x, columns, axis=2)  # a contiguous copy, unlike fancy indexing
    if highpass_hz > 0:
        x = highpass(x, source_rate, highpass_hz)
    if notch_hz > 0:
        x = notch(x, source_rate, notch_hz)
    x = resample(x, source_rate, sample_rate)
    x = fit_length(x, length)
    if scale != 1.0:
        x = x * np.float32(scale)
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclass(frozen=True)
class Preprocessing:
    """The preprocessing of every batch of a run (the `data.*` fields of the same names)."""

    sample_rate: float
    length: int
    leads: tuple[str, ...]
    highpass_hz: float = 0.0
    notch_hz: float = 0.0
    scale: float = 1.0

    def apply(self, x: np.ndarray, source_rate: float, source_leads: tuple[str, ...]) -> np.ndarray:
        """`preprocess` with these settings."""
        return preprocess(
            x,
            source_rate,
            source_leads,
            sample_rate=self.sample_rate,
            length=self.length,
            leads=self.leads,
            highpass_hz=self.highpass_hz,
            notch_hz=self.notch_hz,
            scale=self.scale,
        )
