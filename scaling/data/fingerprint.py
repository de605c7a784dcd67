"""What a dataset is, as a short hash of its content, cheap enough for CODE-II sizes.

A run's identity includes its data by this fingerprint, not by the path it was read
from: the same files under another folder (a relative spelling, a copy on a cluster's
shared disk) are the same data and find the same finished runs.

Tables and headers (`*.csv`, `*.hea`, `*.json`, `*.txt`) are hashed by content; signal
files (HDF5 parts, `.mat`, `.dat`) by their path inside the dataset and size, so a
CODE-II folder of hundreds of gigabytes is fingerprinted by reading its ~300 MB
`exams.csv`. Hidden files are ignored; a changed label or a re-written part changes the
fingerprint, a touched timestamp does not.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CONTENT_SUFFIXES = frozenset({".csv", ".hea", ".json", ".txt"})
_CHUNK = 1 << 20


def fingerprint(path: str | os.PathLike) -> str:
    """A 16-hex-digit hash of the dataset file or folder at `path` ("" if there is none)."""
    top = Path(path)
    if not top.exists():
        return ""
    files = [top] if top.is_file() else sorted(_files(top))
    digest = hashlib.sha256()
    for file in files:
        rel = file.name if file == top else file.relative_to(top).as_posix()
        digest.update(rel.encode() + b"\0")
        if file.suffix.lower() in CONTENT_SUFFIXES:
            with open(file, "rb") as f:
                while block := f.read(_CHUNK):
                    digest.update(block)
        else:
            digest.update(str(file.stat().st_size).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _files(top: Path):
    for folder, dirs, names in os.walk(top):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if not name.startswith("."):
                yield Path(folder) / name
