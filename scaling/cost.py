"""What a sweep will cost before it runs: examples, FLOPs and time per run.

Time comes from the training throughput (examples/s), taken from the first source that
has it: finished runs of the same model size in the store ("measured"), a short
calibration of the train step on this machine (`calibrate`), or the reference table
`reference_throughput.csv` of throughputs measured on one device of each kind, scaled
from its model to the run's by training FLOPs per example ("reference"). A whole-pool run
(`subset_size` 0) is sized by cutting the dataset as its worker will.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scaling import budget
from scaling.config import DataConfig, RunConfig

if TYPE_CHECKING:
    from scaling.sweep import Resources

# Classes a dataset brings when the config leaves them to the data (`classes=()`).
DEFAULT_CLASSES = {"code": 66, "ptbxl": 5, "cpsc": 9}


@dataclass(frozen=True)
class Estimate:
    n_params: int
    train_examples: int  # examples the run will see at most (early stopping may cut it)
    flops: float  # training FLOPs (`budget.training_flops`)
    seconds: float  # NaN when no throughput is known


@dataclass(frozen=True)
class Throughput:
    """Training examples/s of one run shape and where the figure comes from."""

    examples_per_s: float  # NaN when unknown
    source: str  # "measured (k runs)", "calibrated here", "reference: ..." or why unknown


@dataclass(frozen=True)
class PoolSize:
    """Exams in a dataset's training pool, or None with the reason it is unknown."""

    exams: int | None
    reason: str = ""


def class_count(d: DataConfig) -> int:
    """The classes of `d`'s runs (for another kind, 1: the head is a rounding error of cost)."""
    return len(d.classes) or DEFAULT_CLASSES.get(d.kind, 1)


def pool_size(d: DataConfig) -> PoolSize:
    """The training pool of `d`, cut exactly as a worker cuts it (reads the dataset's tables)."""
    from scaling.data import DataError
    from scaling.run_data import open_splits

    try:
        return PoolSize(len(open_splits(dataclasses.replace(d, subset_size=0, shots=0)).pool))
    except (DataError, OSError, ValueError) as e:
        return PoolSize(None, f"dataset not readable: {str(e).splitlines()[0][:120]}")


def training_examples(cfg: RunConfig, pool: int | None = None) -> int:
    """Upper bound on examples seen, from the training length; a whole-pool run
    (`subset_size` 0) needs `pool` for an epoch-bounded length, else 0 (unknown)."""
    t = cfg.train
    return budget.training_examples(
        cfg.data.subset_size or pool or 0,
        batch_size=t.batch_size,
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
    )


def _shape(cfg: RunConfig) -> dict[str, int]:
    d = cfg.data
    return {"n_leads": len(d.leads), "n_classes": class_count(d), "length": d.length}


def estimate(cfg: RunConfig, throughput: float | None, pool: int | None = None) -> Estimate:
    from scaling.models import forward_flops, param_count

    examples = training_examples(cfg, pool)
    flops = budget.training_flops(forward_flops(cfg.model, **_shape(cfg)), examples)
    seconds = examples / throughput if throughput and examples else math.nan
    return Estimate(param_count(cfg.model, **_shape(cfg)), examples, flops, seconds)


def measured_throughput(table: pd.DataFrame | None, n_params: int) -> Throughput | None:
    """Median training examples/s of finished runs of the same model size, if any."""
    if table is None or table.empty or "n_params" not in table:
        return None
    runs = table[table["status"] == "finished"].drop_duplicates("run_id")
    rates = runs.loc[runs["n_params"] == n_params, "examples_per_s"].dropna()
    if not len(rates):
        return None
    return Throughput(float(rates.median()), f"measured ({len(rates)} runs)")


def device_kind(res: Resources) -> str:
    """ "gpu", "tpu" or "cpu": the device a run of these resources trains on."""
    if res.num_gpus > 0:
        return "gpu"
    return "tpu" if any(k.upper().startswith("TPU") for k in res.custom) else "cpu"


def reference_table() -> list[dict[str, str]]:
    """The rows of `reference_throughput.csv` (device, dtype, examples/s, model, shape, where)."""
    text = resources.files("scaling").joinpath("reference_throughput.csv").read_text()
    return list(csv.DictReader(text.splitlines()))


def reference_throughput(cfg: RunConfig, device: str) -> Throughput:
    """The reference figure for `device` (the run's dtype first) whose model's FLOPs per
    example are nearest the run's, scaled by the ratio of those FLOPs (batch size is not)."""
    from scaling.models import forward_flops, ladder_config

    flops = forward_flops(cfg.model, **_shape(cfg))
    rows = [r for r in reference_table() if r["device"] == device]
    rows = [r for r in rows if r["dtype"] == cfg.train.dtype] or rows
    if not rows:
        return Throughput(math.nan, f"unknown: no reference throughput for device '{device}'")

    def ratio(row: dict[str, str]) -> float:
        shape = {"n_leads": int(row["leads"]), "length": int(row["length"])}
        model = ladder_config(row["model"])
        return forward_flops(model, n_classes=class_count(cfg.data), **shape) / flops

    row = min(rows, key=lambda r: abs(math.log(ratio(r))))
    rate = float(row["examples_per_s"])
    return Throughput(
        rate * ratio(row),
        f"reference {device} {row['model']}x{row['length']} {row['dtype']} {rate:g}/s"
        f" x{ratio(row):.3g} by FLOPs/example",
    )


def reference_notes() -> list[str]:
    """Where each reference figure was measured, one line each."""
    return [
        f"{r['device']} {r['model']}x{r['length']} {r['dtype']} batch {r['batch_size']}: "
        f"{r['examples_per_s']}/s, {r['measured']}"
        for r in reference_table()
    ]


def calibrate(cfg: RunConfig, *, steps: int = 5) -> float:
    """Examples/s of the real train step on random batches of the run's shape (after compile)."""
    from scaling.models import init_model
    from scaling.steps import make_steps

    d, t = cfg.data, cfg.train
    model = init_model(
        cfg.model, n_leads=len(d.leads), n_classes=class_count(d), length=d.length, seed=0
    )
    s = make_steps(model, optimizer=t.optimizer, weight_decay=t.weight_decay)
    state = s.init(model)
    rng = np.random.default_rng(0)
    x = s.shard(rng.standard_normal((t.batch_size, d.length, len(d.leads)), dtype=np.float32))
    y = s.shard((rng.random((t.batch_size, class_count(d))) < 0.1).astype(np.float32))
    weight = np.ones(class_count(d), np.float32)
    state, loss = s.train_step(state, x, y, t.lr, weight)  # compile
    loss.block_until_ready()
    started = time.perf_counter()
    for _ in range(steps):
        state, loss = s.train_step(state, x, y, t.lr, weight)
    loss.block_until_ready()
    return steps * t.batch_size / (time.perf_counter() - started)


def throughput(
    cfg: RunConfig,
    table: pd.DataFrame | None,
    device: str,
    *,
    calibrated: bool = False,
    cache: dict | None = None,
) -> Throughput:
    """The run's throughput from the first source that has one (measured, calibrated, reference)."""
    cache = {} if cache is None else cache
    probe = estimate(cfg, None)
    if found := measured_throughput(table, probe.n_params):
        return found
    key = (cfg.model, cfg.data.length, len(cfg.data.leads), cfg.train.batch_size, calibrated)
    if key not in cache:
        if calibrated:
            cache[key] = Throughput(calibrate(cfg), "calibrated here")
        else:
            cache[key] = reference_throughput(cfg, device)
    return cache[key]


def pool_of(cfg: RunConfig, table: pd.DataFrame | None, cache: dict) -> PoolSize:
    """The pool size a finished run of the same data recorded, else cut from the dataset."""
    d = cfg.data
    key = (d.path, d.fingerprint, d.split_seed, d.val_fraction, d.test_fraction, d.test_path)
    if key in cache:
        return cache[key]
    if d.fingerprint and table is not None and {"pool_exams", "fingerprint"} <= set(table):
        done = table[(table["status"] == "finished") & (table["fingerprint"] == d.fingerprint)]
        same = done[(done["split_seed"] == d.split_seed) & (done["val_fraction"] == d.val_fraction)]
        if len(recorded := same["pool_exams"].dropna()):
            cache[key] = PoolSize(int(recorded.iloc[0]))
            return cache[key]
    cache[key] = pool_size(d)
    return cache[key]


def sweep_costs(
    runs: list,
    statuses: list[str],
    table: pd.DataFrame | None,
    device: str,
    *,
    calibrated: bool = False,
) -> pd.DataFrame:
    """One row per run: status, axis values, parameters, examples, FLOPs, seconds and the
    source of its throughput (and, for a whole-pool run, its size or why it is unknown)."""
    rows, rates, pools = [], {}, {}
    for run, status in zip(runs, statuses, strict=True):
        cfg = run.config
        pool = pool_of(cfg, table, pools) if cfg.data.subset_size == 0 else PoolSize(None)
        rate = throughput(cfg, table, device, calibrated=calibrated, cache=rates)
        est = estimate(cfg, rate.examples_per_s, pool.exams)
        source = rate.source
        if cfg.data.subset_size == 0:
            source += f"; whole pool {pool.exams:,d} exams" if pool.exams else f"; {pool.reason}"
        rows.append(
            {
                "run_id": run.run_id,
                "status": status,
                **run.point,
                "n_params": est.n_params,
                "examples": est.train_examples,
                "flops": est.flops if est.train_examples else math.nan,
                "seconds": est.seconds,
                "source": source,
            }
        )
    return pd.DataFrame(rows)
