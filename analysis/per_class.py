"""Per-class scaling exponents of one sweep, ranked: which diagnoses gain most from more data.

    python analysis/per_class.py STORE --out DIR [--sweep code15] [--metric auroc]

Fits a law (default "saturating") to each class's error (1 − metric) against
subset_size and writes:

- per_class_laws.{csv,md}: one row per class, ranked by exponent alpha (largest
  first): alpha with its 95% CI, the asymptote (the metric the law tends to)
  with its CI, n_pos (the fewest positives of the class on the split over the
  runs), too_few_positives (n_pos < --min-positives) and, for a class whose law
  cannot be fitted, the reason in `note` (those come last, without a rank);
- per_class_ranked.{png,pdf}: alpha and asymptote with CIs, one line per class
  in rank order, open grey markers where the class has too few positives;
- per_class_curves.{png,pdf}: each class's points, law and 95% band.

Runs on the whole pool (subset_size 0) are placed at their number of training exams.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import common
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from scaling import plots
from scaling.laws import MetricFit, per_class_fits, per_class_laws


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--metric", default="auroc", help="default: auroc")
    p.add_argument(
        "--min-positives", type=int, default=10, help="flag classes with fewer (default: 10)"
    )
    common.add_law_options(p)
    return p


def analyse(args: argparse.Namespace) -> list[Path]:
    table = common.finished_table(args.store, args.sweep)
    options = {"metric": args.metric, "split": args.split, "form": args.form}
    fits = per_class_fits(table, **options, n_bootstrap=args.bootstrap, seed=args.seed)
    summary = per_class_laws(table, **options, min_positives=args.min_positives, fits=fits)
    ranked = rank(summary)
    fitted = [fits[cls] for cls in ranked["class"] if isinstance(fits[cls], MetricFit)]
    if not fitted:
        reasons = "; ".join(
            f"{c}: {n}" for c, n in zip(summary["class"], summary["note"], strict=True)
        )
        raise common.AnalysisError(f"no per-class law could be fitted: {reasons}")
    sweep = ", ".join(sorted(table["sweep"].unique()))
    title = f"Per-class {args.metric} laws (sweep {sweep}, {args.split} split, {args.form})"
    return [
        *common.save_table(ranked, args.out, "per_class_laws", title=title),
        *plot_ranked(ranked, args.metric, args.min_positives, args.out),
        *plots.plot_per_class(fitted, args.out / "per_class_curves"),
    ]


def rank(summary: pd.DataFrame) -> pd.DataFrame:
    """Classes by exponent alpha, largest first (rank 1); classes without a law last."""
    ranked = summary.sort_values("alpha", ascending=False, na_position="last", kind="stable")
    ranked.insert(0, "rank", ranked["alpha"].rank(ascending=False, method="first").astype("Int64"))
    return ranked.reset_index(drop=True)


def plot_ranked(ranked: pd.DataFrame, metric: str, min_positives: int, out: Path) -> list[Path]:
    """Alpha and asymptote with 95% CIs per class, top to bottom in rank order."""
    shown = ranked[ranked["alpha"].notna()].reset_index(drop=True)
    y = np.arange(len(shown))[::-1]
    labels = [f"{c} (n={n:.0f})" for c, n in zip(shown["class"], shown["n_pos"], strict=True)]
    color = sns.color_palette("colorblind")[0]
    with common.paper_style():
        height = max(2.0, 0.9 + 0.22 * len(shown))
        fig = Figure(figsize=(2 * plots.PANEL[0], height), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        name = plots.METRIC_NAMES.get(metric, metric)
        for ax, column, xlabel in (
            (axes[0], "alpha", "exponent α"),
            (axes[1], "E", f"asymptotic {name}"),
        ):
            for few, style in ((False, {"color": color}), (True, {"color": "0.55", "mfc": "w"})):
                part = shown["too_few_positives"] == few
                if not part.any():
                    continue
                err = [
                    shown.loc[part, column] - shown.loc[part, f"{column}_low"],
                    shown.loc[part, f"{column}_high"] - shown.loc[part, column],
                ]
                ax.errorbar(
                    shown.loc[part, column],
                    y[part.to_numpy()],
                    xerr=np.abs(err),
                    fmt="o",
                    ms=4,
                    capsize=2,
                    label=f"fewer than {min_positives} positives" if few else None,
                    **style,
                )
            ax.set_xlabel(xlabel)
            ax.grid(axis="x", lw=0.4, alpha=0.5)
        axes[0].set_yticks(y, labels)
        if shown["too_few_positives"].any():
            axes[0].legend(frameon=False, loc="lower right")
        return common.save_figure(fig, out, "per_class_ranked")


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(analyse, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
