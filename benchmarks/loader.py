"""Speed and memory of the CODE data path, against the training speed measured in the same run.

Each figure is one JSON line on stdout:

- `train_reference`: training exams/s of the Ribeiro ResNet-1D (batch 64, 4096 x 12) with
  `scaling.steps`; where the model code is missing, the documented ~7 exams/s is printed
  instead (`"measured": false`);
- `stream`: exams/s of `train_stream` (random batches of 64, `--prefetch` threads,
  preprocessing included) from a file in the page cache, for each HDF5 layout: one exam per chunk,
  contiguous, 64 exams per chunk; `read_exams_per_s` is `ExamSet.read` alone on the same
  batches; `ratio` is stream exams/s over training exams/s;
- `big_write` / `big_stream`: a synthetic CODE-layout file of `--big-gb` GB written and then
  read in random batches, each in a fresh process; `peak_rss_growth_mb` is the peak resident
  memory minus the resident memory before writing / reading began.

    python benchmarks/loader.py [--exams 3000] [--batches 60] [--prefetch 2] [--big-gb 4]
                                [--train-steps 3 | --no-train]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from scaling.config import DataConfig
from scaling.data import Split, read_code, train_stream, write_code_dataset
from scaling.run_data import preprocessing

BATCH = 64
LENGTH = 4096
EXAM_BYTES = LENGTH * 12 * 4
DOCUMENTED_TRAIN_EXAMS_PER_S = 7.0  # Ribeiro ResNet on this machine's 2 cores


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--exams", type=int, default=3000, help="exams per layout file")
    p.add_argument("--batches", type=int, default=60, help="timed batches per layout")
    p.add_argument("--big-gb", type=float, default=4.0, help="size of the big file; 0 = skip")
    p.add_argument("--big-batches", type=int, default=150, help="random batches from the big file")
    p.add_argument("--prefetch", type=int, default=2, help="train_stream's prefetch")
    p.add_argument("--train-steps", type=int, default=3, help="timed training steps")
    p.add_argument("--no-train", action="store_true", help="print the documented reference")
    return p.parse_args()


def emit(figure: str, **values: object) -> None:
    print(json.dumps({"figure": figure, **values}), flush=True)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mb() -> float:
    """Resident memory of this process now."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss, not inherited on exec)."""
    return _status_mb("VmHWM")


def warm_page_cache(folder: Path) -> None:
    for file in folder.glob("*.hdf5"):
        with open(file, "rb") as f:
            while f.read(1 << 26):
                pass


def stream_rate(folder: Path, batches: int, prefetch: int) -> tuple[float, float]:
    """(train_stream exams/s, ExamSet.read exams/s) over `batches` random batches."""
    exams = read_code(folder)
    split = Split(exams, np.arange(len(exams)))
    prep = preprocessing(DataConfig(length=LENGTH))
    stream = train_stream(split, prep, BATCH, seed=0, prefetch=prefetch)
    next(stream)  # start the prefetch threads
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    streamed = batches * BATCH / (time.perf_counter() - start)
    stream.close()
    rng = np.random.default_rng(1)
    rows = [rng.choice(len(exams), BATCH, replace=False) for _ in range(batches)]
    start = time.perf_counter()
    for r in rows:
        exams.read(r)
    return streamed, batches * BATCH / (time.perf_counter() - start)


def train_reference(steps: int) -> tuple[float, bool]:
    """Training exams/s of the default ResNet-1D, or the documented figure if it is missing."""
    try:
        from scaling import models
        from scaling.steps import make_steps
    except ImportError:
        return DOCUMENTED_TRAIN_EXAMS_PER_S, False
    import jax.numpy as jnp

    model = models.init_model(models.ModelConfig(), n_leads=12, n_classes=6, length=LENGTH, seed=0)
    steps_fn = make_steps(model, optimizer="adam", weight_decay=0.0)
    state = steps_fn.init(model)
    rng = np.random.default_rng(0)
    x = steps_fn.shard(rng.standard_normal((BATCH, LENGTH, 12), np.float32))
    y = steps_fn.shard((rng.random((BATCH, 6)) < 0.1).astype(np.float32))
    lr, weight = jnp.float32(1e-3), jnp.ones(6, jnp.float32)
    state, loss = steps_fn.train_step(state, x, y, lr, weight)  # compile
    loss.block_until_ready()
    start = time.perf_counter()
    for _ in range(steps):
        state, loss = steps_fn.train_step(state, x, y, lr, weight)
    loss.block_until_ready()
    return steps * BATCH / (time.perf_counter() - start), True


# ---------------------------------------------------------------------------
# The big file, each phase in a fresh process so that peak memory is its own


def big_write(folder: str, n_exams: int) -> dict:
    before = rss_mb()
    start = time.perf_counter()
    write_code_dataset(folder, n_exams=n_exams, n_patients=n_exams // 2, parts=1, chunk_exams=1)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_growth_mb": peak_rss_mb() - before}


def big_stream(folder: str, batches: int) -> dict:
    exams = read_code(folder)
    split = Split(exams, np.arange(len(exams)))
    prep = preprocessing(DataConfig(length=LENGTH))
    before = rss_mb()
    start = time.perf_counter()
    stream = train_stream(split, prep, BATCH, seed=0)
    for _ in range(batches):
        next(stream)
    stream.close()
    rate = batches * BATCH / (time.perf_counter() - start)
    return {"exams_per_s": rate, "peak_rss_growth_mb": peak_rss_mb() - before}


def in_fresh_process(fn, *args) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def main() -> None:
    args = parse_args()
    if args.no_train:
        train_rate, measured = DOCUMENTED_TRAIN_EXAMS_PER_S, False
    else:
        train_rate, measured = train_reference(args.train_steps)
    emit("train_reference", exams_per_s=round(train_rate, 2), measured=measured, batch=BATCH)

    with tempfile.TemporaryDirectory(prefix="loader-bench-") as tmp:
        for layout, chunk_exams in (("chunk1", 1), ("contiguous", 0), ("chunk64", 64)):
            folder = Path(tmp, layout)
            write_code_dataset(
                folder,
                n_exams=args.exams,
                n_patients=args.exams // 2,
                parts=1,
                chunk_exams=chunk_exams,
                seed=0,
            )
            warm_page_cache(folder)
            streamed, read = stream_rate(folder, args.batches, args.prefetch)
            emit(
                "stream",
                layout=layout,
                exams_per_s=round(streamed),
                read_exams_per_s=round(read),
                ratio=round(streamed / train_rate, 1),
                batch=BATCH,
                prefetch=args.prefetch,
            )

    if args.big_gb > 0:
        n_exams = math.ceil(args.big_gb * 1e9 / EXAM_BYTES)
        with tempfile.TemporaryDirectory(prefix="loader-big-") as tmp:
            written = in_fresh_process(big_write, tmp, n_exams)
            size_gb = sum(f.stat().st_size for f in Path(tmp).glob("*.hdf5")) / 1e9
            emit(
                "big_write",
                gb=round(size_gb, 2),
                exams=n_exams,
                seconds=round(written["seconds"], 1),
                peak_rss_growth_mb=round(written["peak_rss_growth_mb"]),
            )
            read = in_fresh_process(big_stream, tmp, args.big_batches)
            emit(
                "big_stream",
                gb=round(size_gb, 2),
                exams_per_s=round(read["exams_per_s"]),
                ratio=round(read["exams_per_s"] / train_rate, 1),
                peak_rss_growth_mb=round(read["peak_rss_growth_mb"]),
            )


if __name__ == "__main__":
    main()
