"""What the analysis scripts share: their arguments, the results table, saving figures and tables.

Each script in this folder is run as `python analysis/<name>.py STORE --out DIR [options]`;
Python then puts this folder on the import path, so the scripts `import common`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from scaling import store
from scaling.laws import LawError
from scaling.plots import DPI  # importing scaling.plots also selects matplotlib's Agg backend
from scaling.results import collect, to_markdown


class AnalysisError(ValueError):
    """The store lacks what an analysis needs; the message says what and where."""


# ---------------------------------------------------------------------------
# Arguments


def parser(
    description: str,
    *,
    sweep_help: str = "the sweep to analyse (default: the store's only sweep with finished runs)",
) -> argparse.ArgumentParser:
    """STORE, --out, --sweep and --split: the arguments every script takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("store", type=Path, help="results store: a folder of <sweep>/<run_id>/ runs")
    p.add_argument("--out", type=Path, required=True, help="folder for the figures and tables")
    p.add_argument("--sweep", help=sweep_help)
    p.add_argument("--split", default="test", choices=("val", "test"), help="default: test")
    return p


def add_law_options(p: argparse.ArgumentParser, *, form: str = "saturating") -> None:
    """--form, --bootstrap and --seed of the law fits."""
    p.add_argument("--form", default=form, help=f"law form (default: {form})")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap refits for the 95%% CIs")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")


def run(analyse: Callable[[argparse.Namespace], list[Path]], args: argparse.Namespace) -> int:
    """Call `analyse`, list the files it wrote; a store that lacks what it needs exits with 1."""
    try:
        written = analyse(args)
    except (AnalysisError, LawError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


# ---------------------------------------------------------------------------
# The results table


def finished_table(store_path: Path, sweep: str | None, *, one_sweep: bool = True) -> pd.DataFrame:
    """The tidy rows of the finished runs in the store (of `sweep`, or of its only sweep).

    With `one_sweep` and no `sweep` given, a store whose finished runs span several
    sweeps is an error naming them: pooling sweeps would mix unrelated runs.
    """
    if not Path(store_path).is_dir():
        raise AnalysisError(f"store {store_path} is not a folder")
    table = collect(store_path, sweep)
    where = f"sweep '{sweep}' of store {store_path}" if sweep else f"store {store_path}"
    if table.empty:
        sweeps = sorted({state.sweep for state in store.scan(store_path)})
        raise AnalysisError(f"no runs in {where}; sweeps there: {sweeps or 'none'}")
    finished = table[table["status"] == store.FINISHED]
    if finished.empty:
        counts = table.drop_duplicates("run_id")["status"].value_counts().to_dict()
        raise AnalysisError(f"no finished runs in {where} (runs by status: {counts})")
    sweeps = sorted(finished["sweep"].unique())
    if one_sweep and sweep is None and len(sweeps) > 1:
        raise AnalysisError(f"{where} has finished runs of several sweeps {sweeps}: pick --sweep")
    return finished.reset_index(drop=True)


# ---------------------------------------------------------------------------
# Saving


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Seaborn's paper context and ticks style, as in `scaling.plots`."""
    with sns.axes_style("ticks"), sns.plotting_context("paper"):
        yield


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """`fig` as <out_dir>/<stem>.png and .pdf."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=DPI)
    return paths


def save_table(
    frame: pd.DataFrame, out_dir: Path, stem: str, *, title: str = "", latex: bool = False
) -> list[Path]:
    """`frame` as <stem>.csv and <stem>.md (a pipe table under `title`), and .tex if asked."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.csv", out_dir / f"{stem}.md"]
    frame.to_csv(paths[0], index=False)
    heading = f"{title}\n\n" if title else ""
    blanks = frame.astype(object).where(frame.notna(), math.nan)  # pandas' NA as blank cells
    paths[1].write_text(heading + to_markdown(blanks), encoding="utf-8")
    if latex:
        paths.append(out_dir / f"{stem}.tex")
        styler = frame.style.hide(axis="index").format(escape="latex", na_rep="–", precision=3)
        styler = styler.format_index(escape="latex", axis=1)
        paths[-1].write_text(styler.to_latex(hrules=True), encoding="utf-8")
    return paths
