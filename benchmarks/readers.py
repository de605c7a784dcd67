"""Speed of the PTB-XL and CPSC readers on the real samples, against `wfdb` / numpy in the same run.

One JSON line per figure:

- `header`: ms per header of `scaling.data.cpsc.read_header` and of `wfdb.rdheader` (the
  reference), over the 104 CPSC sample headers;
- `open_cpsc`: ms per record of `read_cpsc` (headers, labels, checks), against `wfdb.rdheader`
  of the same headers;
- `read_cpsc`: ms per record of `ExamSet.read` on CPSC `.mat` files, against `wfdb.rdrecord`
  of the same records;
- `read_ptbxl`: ms per record of `ExamSet.read` on PTB-XL (100 Hz), against `wfdb.rdsamp` of
  the same records.

Run: ``python benchmarks/readers.py [--repeats 3]`` (needs ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import wfdb

from scaling.data.cpsc import read_cpsc, read_header
from scaling.data.ptbxl import read_ptbxl

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of `fn` over `repeats` runs, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def emit(figure: str, n: int, ours_ms: float, reference_ms: float, reference: str) -> None:
    print(
        json.dumps(
            {
                "figure": figure,
                "records": n,
                "ms_per_record": round(ours_ms / n, 4),
                "reference": reference,
                "reference_ms_per_record": round(reference_ms / n, 4),
                "speedup_vs_reference": round(reference_ms / ours_ms, 2),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"real ECG samples not found at {DATA}")
    cpsc_dir = DATA / "cpsc_sample" / "records"
    headers = sorted(cpsc_dir.glob("*.hea"))
    n = len(headers)

    ours = best_ms(lambda: [read_header(h) for h in headers], args.repeats)
    ref = best_ms(lambda: [wfdb.rdheader(str(h.with_suffix(""))) for h in headers], args.repeats)
    emit("header", n, ours, ref, "wfdb.rdheader")

    emit("open_cpsc", n, best_ms(lambda: read_cpsc(cpsc_dir), args.repeats), ref, "wfdb.rdheader")

    exams = read_cpsc(cpsc_dir)
    rows = np.arange(len(exams))
    ours = best_ms(lambda: [exams.read(rows[i : i + 1]) for i in rows], args.repeats)
    ref = best_ms(
        lambda: [wfdb.rdrecord(str(cpsc_dir / name)) for name in exams.exam_ids], args.repeats
    )
    emit("read_cpsc", len(rows), ours, ref, "wfdb.rdrecord")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ptbxl = read_ptbxl(DATA / "ptbxl_sample", sampling="100")
    rows = np.arange(100)
    records = ptbxl.reader.records[:100]
    ours = best_ms(lambda: [ptbxl.read(rows[i : i + 1]) for i in rows], args.repeats)
    ref = best_ms(lambda: [wfdb.rdsamp(r) for r in records], args.repeats)
    emit("read_ptbxl", len(rows), ours, ref, "wfdb.rdsamp")


if __name__ == "__main__":
    main()
