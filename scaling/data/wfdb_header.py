"""WFDB header files (`.hea`): the record and signal lines and `# key: value` comments.

Parsed here rather than with `wfdb.rdheader`, which costs several ms a header (pandas
lookups; ~6 min for the 88k records of Challenge 2021, and again at every read) and rejects
real Georgia headers whose record line names the file ("E00666.mat 12 500 5000"). The tests
check this parser against `wfdb.rdheader` on every real sample header that wfdb accepts.
Format: https://physionet.org/physiotools/wag/header-5.htm (single-segment records only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scaling.data.dataset import DataError

# WFDB's "invalid sample" value in format 16 (and int16 .mat files); read as NaN like wfdb.
INVALID_INT16 = -32768

_FORMAT = re.compile(r"^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$")
_GAIN = re.compile(r"^([-+]?[\d.]+(?:[eE][-+]?\d+)?)(?:\((-?\d+)\))?(?:/(\S+))?$")
_MV_PER_UNIT = {"mv": 1.0, "uv": 1e-3, "v": 1e3}


@dataclass(frozen=True)
class Header:
    """A single-segment WFDB header; per-signal fields are in signal (lead) order."""

    path: Path
    sample_rate: float
    length: int  # samples per signal
    lead_names: tuple[str, ...]
    files: tuple[str, ...]  # signal file of each lead, relative to the header
    formats: tuple[str, ...]  # "16", "212", ...; "16" also when given as "16x1"
    byte_offsets: tuple[int, ...]
    gains: np.ndarray  # digital units per physical unit
    baselines: np.ndarray  # digital value of 0 physical units
    units: tuple[str, ...]
    comments: dict[str, str] = field(default_factory=dict)  # "Dx" -> "AF,RBBB", "Age" -> "74"

    def mv_scales(self) -> np.ndarray:
        """mV per digital unit of each lead: mV = (digital - baseline) * scale."""
        per_unit = []
        for unit in self.units:
            if unit.lower() not in _MV_PER_UNIT:
                raise DataError(f"{self.path}: unit {unit!r}; expected mV, uV or V")
            per_unit.append(_MV_PER_UNIT[unit.lower()])
        return np.array(per_unit) / self.gains


def read_header(path: Path) -> Header:
    """Parse a WFDB header; anything that does not fit is a DataError naming the line."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as e:
        raise DataError(f"{path}: cannot read the header ({e})") from e
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    comments = {}
    for line in lines:
        if line.startswith("#"):
            key, sep, value = line.lstrip("#").partition(":")
            if sep:
                comments[key.strip()] = value.strip()
    spec = [line for line in lines if not line.startswith("#")]
    if not spec:
        raise DataError(f"{path}: no record line; expected 'name n_sig fs sig_len'")
    n_sig, rate, length = _record_line(path, spec[0])
    if len(spec) - 1 != n_sig:
        raise DataError(f"{path}: record line announces {n_sig} signals but has {len(spec) - 1}")
    signals = [_signal_line(path, i, line) for i, line in enumerate(spec[1:], start=1)]
    files, formats, offsets, gains, baselines, units, leads = zip(*signals, strict=True)
    return Header(
        path=path,
        sample_rate=rate,
        length=length,
        lead_names=leads,
        files=files,
        formats=formats,
        byte_offsets=offsets,
        gains=np.array(gains),
        baselines=np.array(baselines, dtype=np.float64),
        units=units,
        comments=comments,
    )


def _record_line(path: Path, line: str) -> tuple[int, float, int]:
    """n_sig, fs, sig_len from 'name n_sig fs[/counter[(base)]] sig_len ...'."""
    tokens = line.split()
    try:
        if "/" in tokens[0]:
            raise ValueError("multi-segment records are not supported")
        return int(tokens[1]), float(tokens[2].split("/")[0]), int(tokens[3])
    except (IndexError, ValueError) as e:
        raise DataError(
            f"{path}: record line {line!r} is not 'name n_sig fs sig_len ...' ({e})"
        ) from e


def _signal_line(path: Path, i: int, line: str) -> tuple:
    """'file format[xspf][:skew][+offset] gain[(baseline)][/units] res zero init checksum block
    lead' -> file, format, offset, gain, baseline, units, lead."""
    tokens = line.split()
    fmt = _FORMAT.match(tokens[1]) if len(tokens) >= 9 else None
    gain = _GAIN.match(tokens[2]) if fmt else None
    if gain is None or fmt.group(2) not in (None, "1") or fmt.group(3) not in (None, "0"):
        raise DataError(
            f"{path}: signal line {i} {line!r} is not 'file format(+offset) gain(baseline)/units "
            "resolution zero initial checksum block lead' with one sample per frame, no skew"
        )
    value, baseline, unit = gain.groups()
    return (
        tokens[0],
        fmt.group(1),
        int(fmt.group(4) or 0),
        float(value) or 200.0,  # WFDB: a gain of 0 means 200
        int(baseline) if baseline is not None else int(tokens[4]),  # default: ADC zero
        unit or "mV",
        " ".join(tokens[8:]),
    )
