"""Few-shot transfer curves: the target metric vs k positives per class, per pretraining size.

    python analysis/transfer.py STORE --out DIR [--sweep transfer_ptbxl] [--metric auroc]

Takes the finished transfer runs of the store (transfer.mode finetune,
linear_probe or scratch; all sweeps unless --sweep) and writes:

- transfer.{png,pdf}: one panel per mode (finetune, linear probe), the metric
  (default macro AUROC) against k = `shots`, one line per pretraining
  subset_size, training from scratch as the dashed baseline in every panel;
  runs on the full target training set (shots 0) stand apart at the right.
  Error bars are 95% CIs over seeds (t interval of the runs' values).
- transfer.{csv,md}: mean, std and 95% CI over seeds (the runs of a cell) per
  mode, pretrained_subset_size and shots.

The pretraining subset_size is read from the `pretrained` selector
("code15:subset_size=N,...") or else from the pretrained run's config; 0 is the
whole pool. Scratch runs have none.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import common
import numpy as np
import pandas as pd
import seaborn as sns
from etils import epath
from matplotlib.figure import Figure
from scipy import stats

from scaling import plots, store
from scaling.config import RunConfig, override, parse_overrides, resolve_key
from scaling.laws.table import SCORES, metric_rows

MODES = ("finetune", "linear_probe", "scratch")
BASELINE = "scratch"
FULL = 0  # shots 0: the whole target training set
KEYS = ["mode", "pretrained_subset_size", "shots"]
DODGE = 0.05  # horizontal offset between the lines of a panel, in units of one k step


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(
        __doc__.splitlines()[0], sweep_help="only this sweep's runs (default: every sweep's)"
    )
    p.add_argument("--metric", default="auroc", help="default: auroc")
    p.add_argument("--class", dest="cls", default="macro", help="default: macro")
    return p


def analyse(args: argparse.Namespace) -> list[Path]:
    table = common.finished_table(args.store, args.sweep, one_sweep=False)
    table = table[table["mode"].isin(MODES)]
    if table.empty:
        where = f"sweep '{args.sweep}' of " if args.sweep else ""
        raise common.AnalysisError(
            f"no finished transfer runs (transfer.mode {', '.join(MODES)}) in {where}"
            f"store {args.store}"
        )
    rows = metric_rows(table, args.metric, args.cls, args.split)
    sizes = {p: pretraining_size(p, args.store) for p in rows["pretrained"].unique()}
    rows = rows.assign(pretrained_subset_size=rows["pretrained"].map(sizes).astype("Int64"))
    summary = summarise(rows, args.metric)
    name = f"{args.cls} {plots.METRIC_NAMES.get(args.metric, args.metric)} ({args.split})"
    title = f"Transfer: {name}, mean and 95% CI over seeds"
    return [
        *common.save_table(summary, args.out, "transfer", title=title),
        *plot_transfer(summary, name, args.out),
    ]


def pretraining_size(pretrained: str, store_root: Path) -> int | None:
    """subset_size of the pretrained run: from the selector if it names one, else its config."""
    if not pretrained:
        return None
    try:
        _, colon, query = pretrained.partition(":")
        if colon and "://" not in pretrained and not pretrained.startswith("/"):
            wanted = parse_overrides([q for q in query.split(",") if q])
            for key, value in wanted.items():
                if resolve_key(key) == "data.subset_size":
                    return override(RunConfig(), {key: value}).data.subset_size
        from scaling.transfer import resolve_pretrained  # imports JAX, so only when needed

        path = resolve_pretrained(pretrained, epath.Path(store_root))
        return store.load_config(path).data.subset_size
    except (ValueError, FileNotFoundError) as e:  # ConfigError, TransferError, no config.json
        raise common.AnalysisError(
            f"cannot tell the pretraining subset_size of transfer.pretrained '{pretrained}': {e}"
        ) from e


def summarise(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, std and t-interval 95% CI over the runs of each (mode, pretraining size, shots)."""
    cells = rows.groupby(KEYS, dropna=False)["value"].agg(n_runs="size", mean="mean", std="std")
    cells = cells.reset_index()
    half = stats.t.ppf(0.975, cells["n_runs"] - 1) * cells["std"] / np.sqrt(cells["n_runs"])
    low, high = cells["mean"] - half, cells["mean"] + half
    if metric in SCORES:  # a score's CI ends inside [0, 1]
        low, high = low.clip(0.0, 1.0), high.clip(0.0, 1.0)
    cells = cells.assign(ci_low=low, ci_high=high)
    return cells.sort_values(KEYS, key=_order).reset_index(drop=True)


def _order(column: pd.Series) -> pd.Series:
    """Sort key: modes as in MODES; sizes and shots ascending with 0 (all) after the rest."""
    if column.name == "mode":
        return column.map(MODES.index)
    return column.astype(float).replace(0, np.inf)


def plot_transfer(summary: pd.DataFrame, name: str, out: Path) -> list[Path]:
    """One panel per pretrained mode: a line per pretraining size, the scratch baseline dashed."""
    modes = [m for m in MODES if m != BASELINE and m in set(summary["mode"])] or [BASELINE]
    few = sorted(k for k in summary["shots"].unique() if k != FULL)
    position = {k: i for i, k in enumerate(few)}
    if (summary["shots"] == FULL).any():
        position[FULL] = len(few) + 0.2 if few else 0
    sizes = sorted(summary["pretrained_subset_size"].dropna().unique(), key=lambda n: n or np.inf)
    colors = sns.color_palette("viridis", len(sizes))
    with common.paper_style():
        fig = Figure(figsize=(plots.PANEL[0] * len(modes) + 1.6, plots.PANEL[1]))
        fig.set_layout_engine("constrained")
        axes = fig.subplots(1, len(modes), sharey=True, squeeze=False)[0]
        for ax, mode in zip(axes, modes, strict=True):
            of_mode = summary[summary["mode"] == mode]
            lines = [
                (of_mode[of_mode["pretrained_subset_size"] == size], color, _size_label(size), "-")
                for size, color in zip(sizes, colors, strict=True)
            ]
            if mode != BASELINE:
                lines.append((summary[summary["mode"] == BASELINE], "0.2", BASELINE, "--"))
            for i, (part, color, label, linestyle) in enumerate(lines):
                shift = DODGE * (i - (len(lines) - 1) / 2)
                _draw(
                    ax, part, {k: x + shift for k, x in position.items()}, color, label, linestyle
                )
            if few and FULL in position:
                ax.axvline(len(few) - 0.4, color="0.75", lw=0.8)
            ax.set_xticks(list(position.values()), [f"{k}" if k else "all" for k in position])
            ax.set_xlabel("positives per class (k)")
            ax.set_title(mode.replace("_", " "))
        axes[0].set_ylabel(name)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right upper", frameon=False)
        return common.save_figure(fig, out, "transfer")


def _size_label(size: int) -> str:
    return f"pretrained on {'the whole pool' if size == 0 else f'{size:,} exams'}"


def _draw(ax, part: pd.DataFrame, position: dict, color, label: str, linestyle: str) -> None:
    """Few-shot points joined by a line, the full-data point apart; 95% CIs as error bars."""
    if part.empty:
        return
    part = part.sort_values("shots")
    few, full = part[part["shots"] != FULL], part[part["shots"] == FULL]
    for points, fmt in ((few, f"o{linestyle}"), (full, "s")):
        if points.empty:
            continue
        spread = [
            (points["mean"] - points["ci_low"]).fillna(0),
            (points["ci_high"] - points["mean"]).fillna(0),
        ]
        ax.errorbar(
            points["shots"].map(position),
            points["mean"],
            yerr=spread,
            fmt=fmt,
            ms=3.5,
            lw=1.2,
            capsize=2,
            color=color,
            label=label if fmt != "s" or few.empty else None,
        )


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(analyse, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
