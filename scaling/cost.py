"""What a sweep will cost before it runs: examples, FLOPs and time per run.

Time comes from the training throughput (examples/s) that finished runs of the same
model size recorded in the store, or from a short calibration of the train step on
this machine's devices (`calibrate`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling.config import DataConfig, RunConfig

# Classes a dataset brings when the config leaves them to the data (`classes=()`).
DEFAULT_CLASSES = {"code": 66, "ptbxl": 5, "cpsc": 9}


@dataclass(frozen=True)
class Estimate:
    n_params: int
    train_examples: int  # examples the run will see at most (early stopping may cut it)
    flops: float  # training FLOPs: 3 × forward per example (forward + backward)
    seconds: float  # NaN when no throughput is known


def class_count(d: DataConfig) -> int:
    return len(d.classes) or DEFAULT_CLASSES[d.kind]


def training_examples(cfg: RunConfig) -> int:
    """Upper bound on examples seen, from the training length (0 if it needs the pool size)."""
    t, n = cfg.train, cfg.data.subset_size
    limits = []
    if t.max_epochs and n:
        limits.append(t.max_epochs * math.ceil(n / t.batch_size) * t.batch_size)
    if t.max_steps:
        limits.append(t.max_steps * t.batch_size)
    return min(limits) if limits else 0


def estimate(cfg: RunConfig, throughput: float | None) -> Estimate:
    from scaling.models import forward_flops, param_count

    d = cfg.data
    shape = {"n_leads": len(d.leads), "n_classes": class_count(d), "length": d.length}
    examples = training_examples(cfg)
    flops = 3.0 * examples * forward_flops(cfg.model, **shape)
    seconds = examples / throughput if throughput else math.nan
    return Estimate(param_count(cfg.model, **shape), examples, flops, seconds)


def measured_throughput(table: pd.DataFrame | None, n_params: int) -> float | None:
    """Median training examples/s of finished runs of the same model size, if any."""
    if table is None or table.empty or "n_params" not in table:
        return None
    runs = table[table["status"] == "finished"].drop_duplicates("run_id")
    rates = runs.loc[runs["n_params"] == n_params, "examples_per_s"].dropna()
    return float(rates.median()) if len(rates) else None


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


def sweep_costs(
    runs: list, statuses: list[str], table: pd.DataFrame | None, *, calibrated: bool = False
) -> pd.DataFrame:
    """One row per run: status, axis values, parameters, examples, FLOPs, seconds and
    where the throughput came from ("measured" by earlier runs, "calibrated" here, or "")."""
    rows, calibrations = [], {}
    for run, status in zip(runs, statuses, strict=True):
        probe = estimate(run.config, None)
        rate, source = measured_throughput(table, probe.n_params), "measured"
        if rate is None and calibrated:
            key = (run.config.model, run.config.data.length, run.config.train.batch_size)
            if key not in calibrations:
                calibrations[key] = calibrate(run.config)
            rate, source = calibrations[key], "calibrated"
        est = estimate(run.config, rate)
        rows.append(
            {
                "run_id": run.run_id,
                "status": status,
                **run.point,
                "n_params": est.n_params,
                "examples": est.train_examples,
                "flops": est.flops,
                "seconds": est.seconds,
                "throughput": source if rate else "",
            }
        )
    return pd.DataFrame(rows)
