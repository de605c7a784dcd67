"""What a run will cost before it starts: examples, FLOPs and (from earlier runs) time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from scaling.config import RunConfig


@dataclass(frozen=True)
class Estimate:
    train_examples: int  # examples the run will see at most (early stopping may cut it)
    flops: float  # training FLOPs: 3 × forward per example (forward + backward)
    seconds: float  # NaN when no earlier run measured a throughput


def training_examples(cfg: RunConfig, pool_exams: int | None = None) -> int:
    """Upper bound on examples seen, from the resolved training length."""
    t = cfg.train
    n = cfg.data.subset_size or pool_exams or 0
    limits = []
    if t.max_epochs and n:
        limits.append(t.max_epochs * math.ceil(n / t.batch_size) * t.batch_size)
    if t.max_steps:
        limits.append(t.max_steps * t.batch_size)
    return min(limits) if limits else 0


def estimate(
    cfg: RunConfig,
    *,
    n_leads: int,
    n_classes: int,
    throughput: float | None,
    pool_exams: int | None = None,
) -> Estimate:
    from scaling.models import forward_flops

    examples = training_examples(cfg, pool_exams)
    flops = (
        3.0
        * examples
        * forward_flops(cfg.model, n_leads=n_leads, n_classes=n_classes, length=cfg.data.length)
    )
    seconds = examples / throughput if throughput else math.nan
    return Estimate(examples, flops, seconds)


def measured_throughput(table: pd.DataFrame, n_params: int) -> float | None:
    """Training examples/s of earlier finished runs of the same model size, if any."""
    if table.empty or "n_params" not in table:
        return None
    runs = table[(table["status"] == "finished")].drop_duplicates("run_id")
    same = runs[runs["n_params"] == n_params]
    rates = same["examples_per_s"].dropna()
    return float(rates.median()) if len(rates) else None
