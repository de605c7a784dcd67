"""What a point on a law costs (examples seen, FLOPs, wall time) and compute-optimal (N, D)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling.budget import training_flops
from scaling.laws.fitting import LawError, LawFit
from scaling.laws.table import finished_runs

COST_COLUMNS = ("train_examples_seen", "flops_per_example", "wall_time_s")


def cost_of(table: pd.DataFrame, x_target: float, *, x: str = "subset_size") -> dict[str, float]:
    """The training cost at `x_target`, extrapolated from the finished runs.

    Examples seen are taken as proportional to x (least squares through the
    origin over the runs); FLOPs = `budget.training_flops` of the examples
    seen (forward + backward); wall time = examples seen / the runs' pooled
    throughput. Returns x, train_examples_seen, flops and wall_time_s.
    """
    if not np.isfinite(x_target) or x_target <= 0:
        raise LawError(f"cost_of needs a finite positive {x}, got {x_target}")
    runs = finished_runs(table, (x, *COST_COLUMNS)).drop_duplicates("run_id")
    runs = runs.dropna(subset=[x, *COST_COLUMNS])
    if runs.empty:
        raise LawError(f"no finished run records all of {[x, *COST_COLUMNS]}")
    size, seen = runs[x].to_numpy(float), runs["train_examples_seen"].to_numpy(float)
    examples = x_target * (size @ seen) / (size @ size)
    seconds_per_example = runs["wall_time_s"].sum() / seen.sum()
    return {
        x: float(x_target),
        "train_examples_seen": float(examples),
        "flops": training_flops(runs["flops_per_example"].median(), examples),
        "wall_time_s": float(examples * seconds_per_example),
    }


def flops_per_nd(table: pd.DataFrame, x: tuple[str, str] = ("n_params", "subset_size")) -> float:
    """Training FLOPs per unit of N·D in the runs (6 for a transformer counted in tokens).

    Training FLOPs (`scaling.budget.training_flops`) / (N·D), the median over the
    finished runs; turns the joint law's (N, D) into compute.
    """
    columns = (*x, "flops_per_example", "train_examples_seen")
    runs = finished_runs(table, columns).drop_duplicates("run_id").dropna(subset=list(columns))
    if runs.empty:
        raise LawError(f"no finished run records all of {list(columns)}")
    flops = training_flops(runs["flops_per_example"], runs["train_examples_seen"])
    return float((flops / (runs[x[0]] * runs[x[1]])).median())


def compute_optimal(
    law: LawFit, compute: np.ndarray, flops_per_nd: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """The (N, D) that minimise a joint law at each compute budget C = flops_per_nd · N · D.

    Closed form of Hoffmann et al. (2022): N = G·(C/k)^(beta/(alpha+beta)),
    D = (C/k)/N, with G = (alpha·A / (beta·B))^(1/(alpha+beta)) and k = flops_per_nd.
    """
    if law.form != "joint":
        raise LawError(f"compute_optimal needs a joint law, not '{law.form}'")
    p = law.params
    budget = np.asarray(compute, dtype=float) / flops_per_nd
    exponent_sum = p["alpha"] + p["beta"]
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / exponent_sum)
    n = g * budget ** (p["beta"] / exponent_sum)
    return n, budget / n
