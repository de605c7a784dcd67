"""Per-class result tables in the CODE-II paper's format, for the largest-subset runs of a sweep.

    python analysis/paper_tables.py STORE --out DIR [--sweep code2] [--subset-size N]

For each finished run at the chosen subset_size (default: the sweep's largest,
0 = the whole pool counting as largest) writes paper_table_<run_id>.{csv,md,tex}:
one row per class (in the config's class order) then micro and macro, a column
n_pos (positives on the split), and one column per metric with each cell
"value (low–high)": the run's value and its bootstrap 95% CI.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import common
import pandas as pd

from scaling.plots import METRIC_NAMES

METRICS = ("auroc", "auprc", "f1", "recall", "specificity")
COLUMN_NAMES = METRIC_NAMES | {"recall": "Sensitivity", "specificity": "Specificity"}
SUMMARY_ROWS = ("micro", "macro")


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--subset-size", type=int, help="default: the largest of the sweep")
    p.add_argument("--metrics", nargs="+", default=list(METRICS), help="default: %(default)s")
    p.add_argument("--digits", type=int, default=3, help="decimals in the cells (default: 3)")
    return p


def analyse(args: argparse.Namespace) -> list[Path]:
    table = common.finished_table(args.store, args.sweep)
    size = largest(table["subset_size"]) if args.subset_size is None else args.subset_size
    runs = table[table["subset_size"] == size]
    if runs.empty:
        sizes = sorted(table["subset_size"].unique())
        raise common.AnalysisError(f"no finished run has subset_size {size}; there are {sizes}")
    written = []
    for run_id, rows in runs.groupby("run_id", sort=True):
        paper = paper_table(rows[rows["split"] == args.split], args.metrics, args.digits)
        first = rows.iloc[0]
        title = (
            f"Run {run_id} (sweep {first['sweep']}, subset_size {size}, data_seed "
            f"{first['data_seed']}, init_seed {first['init_seed']}), {args.split} split: "
            "value (95% bootstrap CI)"
        )
        written += common.save_table(
            paper, args.out, f"paper_table_{run_id}", title=title, latex=True
        )
    return written


def largest(sizes: pd.Series) -> int:
    """The largest subset_size (whole-pool runs are listed at the pool's size)."""
    return int(sizes.max())


def paper_table(rows: pd.DataFrame, metrics: Sequence[str], digits: int) -> pd.DataFrame:
    """One run's rows as a table: classes then micro, macro; cells "value (low–high)"."""
    if rows.empty:
        raise common.AnalysisError("the run has no rows on that split")
    missing = [m for m in metrics if m not in set(rows["metric"])]
    if missing:
        have = sorted(rows["metric"].dropna().unique())
        raise common.AnalysisError(f"the runs lack the metrics {missing}; they have {have}")
    named = str(rows["classes"].iloc[0]).split(",")
    present = [c for c in pd.unique(rows["class"]) if c not in (*SUMMARY_ROWS, "all")]
    classes = [c for c in named if c in present] + [c for c in present if c not in named]
    order = classes + [c for c in SUMMARY_ROWS if c in set(rows["class"])]
    shown = rows[rows["metric"].isin(metrics) & rows["class"].isin(order)]
    cells = shown.assign(
        cell=[cell(r.value, r.ci_low, r.ci_high, digits) for r in shown.itertuples()]
    )
    wide = cells.pivot(index="class", columns="metric", values="cell").reindex(order)[list(metrics)]
    n_pos = shown.drop_duplicates("class").set_index("class")["n_pos"].reindex(order)
    wide.insert(0, "n_pos", [f"{n:.0f}" if c in classes else "" for c, n in n_pos.items()])
    wide = wide.rename(columns=lambda m: COLUMN_NAMES.get(m, m))
    return wide.rename_axis("class").reset_index().rename_axis(columns=None)


def cell(value: float, low: float, high: float, digits: int) -> str:
    """ "value (low–high)"; the value alone without a CI; "–" without a value."""
    if math.isnan(value):
        return "–"
    if math.isnan(low) or math.isnan(high):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(analyse, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
