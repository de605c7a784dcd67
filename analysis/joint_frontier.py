"""The joint law over model size and data, its iso-error contours and compute-optimal frontier.

    python analysis/joint_frontier.py STORE --out DIR [--sweep ladder] [--metric auroc]

Fits y = E + A·N^(−alpha) + B·D^(−beta) to the error of a metric (default macro
AUROC; 1 − metric, or the loss) with N = n_params and D = subset_size over the
sweep's finished runs, which must vary both. Compute is C = k·N·D, with k the
training FLOPs per N·D of the runs (3 × forward FLOPs × examples seen / (N·D)).
Writes:

- joint.{png,pdf}: iso-error contours, the runs, and the compute-optimal frontier;
- joint_law.{csv,md}: the parameters with 95% bootstrap CIs, and k;
- frontier.{csv,md}: the compute-optimal (N, D) and the law's metric at compute
  budgets from the smallest run's to 100× the largest run's;
- joint_points.{csv,md}: the fitted points (mean error over seeds per (N, D)).

Runs on the whole pool (subset_size 0) are placed at their number of training exams.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import common
import numpy as np
import pandas as pd

from scaling import plots
from scaling.laws import MetricFit, compute_optimal, fit_metric, flops_per_nd, from_error

X = ("n_params", "subset_size")
BUDGETS = 9  # compute budgets in the frontier table
BEYOND = 100.0  # the frontier table reaches this multiple of the largest run's compute


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--metric", default="auroc", help="default: auroc")
    p.add_argument("--class", dest="cls", default="macro", help="default: macro")
    common.add_law_options(p, form="joint")
    return p


def analyse(args: argparse.Namespace) -> list[Path]:
    table = common.finished_table(args.store, args.sweep)
    varied = {x: sorted(table[x].dropna().unique().tolist()) for x in X}
    if any(len(values) < 2 for values in varied.values()):
        raise common.AnalysisError(
            f"a joint law needs runs that vary both {' and '.join(X)}; the finished runs have "
            + ", ".join(f"{x} {values}" for x, values in varied.items())
        )
    fit = fit_metric(
        table,
        metric=args.metric,
        cls=args.cls,
        split=args.split,
        x=X,
        form=args.form,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
    )
    k = flops_per_nd(table, X)
    sweep = ", ".join(sorted(table["sweep"].unique()))
    about = f"{args.cls} {args.metric}, {args.split} split, sweep {sweep}"
    return [
        *plots.plot_joint(fit, args.out / "joint", flops_per_nd=k),
        *common.save_table(law_table(fit, k), args.out, "joint_law", title=f"Joint law ({about})"),
        *common.save_table(
            frontier(fit, k), args.out, "frontier", title=f"Compute-optimal frontier ({about})"
        ),
        *common.save_table(
            fit.points.drop(columns="values").rename(columns={"N": X[0], "D": X[1]}),
            args.out,
            "joint_points",
            title=f"Points of the joint law: error of {about}",
        ),
    ]


def law_table(fit: MetricFit, k: float) -> pd.DataFrame:
    """One row per parameter of the law (value and 95% CI), then k = FLOPs per N·D."""
    law = fit.law
    rows = [
        {"parameter": p, "value": v, "ci_low": law.ci[p][0], "ci_high": law.ci[p][1]}
        for p, v in law.params.items()
    ]
    rows.append({"parameter": "flops_per_nd", "value": k})
    return pd.DataFrame(rows)


def frontier(fit: MetricFit, k: float) -> pd.DataFrame:
    """The compute-optimal (N, D) and the law's error and metric at log-spaced budgets."""
    compute = k * fit.law.x[:, 0] * fit.law.x[:, 1]
    budgets = np.geomspace(compute.min(), BEYOND * compute.max(), BUDGETS)
    n, d = compute_optimal(fit.law, budgets, k)
    error = fit.law.predict(np.column_stack([n, d]))
    return pd.DataFrame(
        {
            "compute_flops": budgets,
            X[0]: n,
            X[1]: d,
            "error": error,
            fit.metric: from_error(fit.metric, error),
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(analyse, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
