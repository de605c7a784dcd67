"""Data-scaling curves of one sweep: micro and macro AUROC, AUPRC, F1 and the loss vs subset_size.

    python analysis/data_scaling.py STORE --out DIR [--sweep code15] [--split test]

Fits a law (default "saturating", E + A·x^(−alpha)) to the error of each metric
(1 − metric, or the loss) over the sweep's finished runs and writes:

- data_scaling.{png,pdf}: one panel per metric, micro and macro, mean ± std over
  seeds, the law with its 95% bootstrap band (dashed beyond the data);
- residuals.{png,pdf}: log-space residuals of every law;
- laws.{csv,md}: per metric and class, the law's parameters with 95% CIs, the
  metric it tends to and the metric it predicts at 10× the largest subset_size;
  a law that cannot be fitted gets a row with the reason in `note`;
- points.{csv,md}: the metric per subset_size (mean, std, seeds) and the law's value.

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
from scaling.laws import MetricFit, asymptote, from_error, to_metric
from scaling.laws.table import fit_summaries

METRICS = ("auroc", "auprc", "f1", "loss")
EXTRAPOLATE = 10.0  # the law table's prediction is at this multiple of the largest subset_size


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--metrics", nargs="+", default=list(METRICS), help="default: %(default)s")
    common.add_law_options(p)
    return p


def analyse(args: argparse.Namespace) -> list[Path]:
    table = common.finished_table(args.store, args.sweep)
    fits, errors = fit_summaries(
        table,
        args.metrics,
        split=args.split,
        form=args.form,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
    )
    failures = [{"metric": m, "class": c, "note": str(e)} for m, c, e in errors]
    if not fits:
        reasons = "; ".join(f"{f['metric']} ({f['class']}): {f['note']}" for f in failures)
        raise common.AnalysisError(f"no law could be fitted: {reasons}")
    sweep = ", ".join(sorted(table["sweep"].unique()))
    caption = f"sweep {sweep}, {args.split} split, {args.form} laws"
    return [
        *plots.plot_scaling(fits, args.out / "data_scaling"),
        *plots.plot_residuals(fits, args.out / "residuals"),
        *common.save_table(law_table(fits, failures), args.out, "laws", title=f"Laws ({caption})"),
        *common.save_table(points_table(fits), args.out, "points", title=f"Points ({caption})"),
    ]


def law_table(fits: list[MetricFit], failures: list[dict[str, str]]) -> pd.DataFrame:
    """One row per fit: parameters with CIs, asymptote and extrapolation in metric units."""
    rows = []
    for fit in fits:
        law = fit.law
        row = {"metric": fit.metric, "class": fit.cls, "form": law.form, "points": len(law.y)}
        row["runs"] = int(fit.points["n_seeds"].sum())
        for name, value in law.params.items():
            row |= {name: value, f"{name}_low": law.ci[name][0], f"{name}_high": law.ci[name][1]}
        value, (low, high) = asymptote(fit)
        row |= {"asymptote": value, "asymptote_low": low, "asymptote_high": high}
        x = EXTRAPOLATE * law.x.max()
        band = law.predict_ci([x]) if len(law.bootstrap) else ([np.nan], [np.nan])
        value, (low, high) = to_metric(fit.metric, law.predict([x])[0], (band[0][0], band[1][0]))
        row |= {"extrapolated_x": x, "extrapolated": value}
        row |= {"extrapolated_low": low, "extrapolated_high": high}
        row |= {"aic": law.aic, "note": ""}
        rows.append(row)
    return pd.DataFrame(rows + failures)


def points_table(fits: list[MetricFit]) -> pd.DataFrame:
    """The metric at each subset_size of each fit: mean, std over seeds, and the law's value."""
    frames = []
    for fit in fits:
        points = fit.points
        frames.append(
            pd.DataFrame(
                {
                    "metric": fit.metric,
                    "class": fit.cls,
                    "subset_size": points["x"],
                    "n_seeds": points["n_seeds"],
                    "mean": from_error(fit.metric, points["mean"]),
                    "std": points["std"],
                    "law": from_error(fit.metric, fit.law.predict(points["x"].to_numpy())),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(analyse, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
