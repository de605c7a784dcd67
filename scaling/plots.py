"""Figures of fitted laws: scaling curves, per-class panels, residuals, forms, backtest, joint.

Every function takes fitted laws (`scaling.laws.MetricFit`), draws with seaborn's
"paper" style (fonts ≥ 8 pt, panels 3.5 in wide, one journal column) and saves
a PNG and a PDF with the stem of `out`, returning both paths. Axes are log-log,
y in error units (1 − metric, or the loss itself).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
import seaborn as sns
from matplotlib import ticker
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from scaling.laws import Backtest, MetricFit, compute_optimal
from scaling.laws.table import LOSSES

matplotlib.use("Agg")  # files only, never a window

PANEL = (3.5, 2.6)  # inches per panel
DPI = 200  # of the PNGs
EXTRAPOLATE = 10.0  # draw laws out to this multiple of the largest x
METRIC_NAMES = {"auroc": "AUROC", "auprc": "AUPRC", "f1": "F1", "npv": "NPV", "loss": "loss"}
X_NAMES = {"subset_size": "training exams", "train_exams": "training exams"}
X_NAMES |= {"n_params": "parameters", "train_examples_seen": "examples seen"}


def plot_scaling(fits: list[MetricFit], out: Path) -> list[Path]:
    """Scaling curves, one panel per metric, one colour per class (e.g. micro and macro).

    Points are the mean over seeds with their std as error bars; the line is the
    fitted law (dashed beyond the largest x, out to 10×) with its 95% band.
    """
    metrics = list(dict.fromkeys(f.metric for f in fits))
    with _paper_style():
        fig, axes = _panels(len(metrics))
        for ax, metric in zip(axes, metrics, strict=False):
            of_metric = [f for f in fits if f.metric == metric]
            for fit, color in zip(of_metric, sns.color_palette("colorblind"), strict=False):
                _draw_fit(ax, fit, color, f"{fit.cls} (α = {fit.law.params['alpha']:.2f})")
            _label(ax, of_metric[0])
            ax.set_title(f"{METRIC_NAMES.get(metric, metric)} ({of_metric[0].split})")
            ax.legend(frameon=False)
        return _save(fig, out)


def plot_per_class(fits: list[MetricFit], out: Path) -> list[Path]:
    """Small multiples: one panel per class, each with its points, law and band."""
    with _paper_style():
        fig, axes = _panels(len(fits), columns=3)
        color = sns.color_palette("colorblind")[0]
        for ax, fit in zip(axes, fits, strict=False):
            _draw_fit(ax, fit, color, None)
            _label(ax, fit)
            ax.set_title(f"{fit.cls} (α = {fit.law.params['alpha']:.2f})")
        return _save(fig, out)


def plot_residuals(fits: list[MetricFit], out: Path) -> list[Path]:
    """Log-space residuals log(law) − log(mean) against x, one marker colour per fit."""
    with _paper_style():
        legend_rows = -(-len(fits) // 2)
        fig, (ax,) = _panels(1, height=PANEL[1] + 0.18 * legend_rows)
        for fit, color in zip(fits, sns.color_palette("colorblind", len(fits)), strict=True):
            name = f"{METRIC_NAMES.get(fit.metric, fit.metric)} {fit.cls}"
            ax.plot(fit.law.x, fit.law.residuals, "o-", ms=3, lw=0.8, color=color, label=name)
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(_x_label(fits[0].x_name))
        ax.set_ylabel("log(law) − log(observed)")
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
        return _save(fig, out)


def plot_forms(fits: list[MetricFit], out: Path) -> list[Path]:
    """Several law forms fitted to the same points, on one panel (with each form's AIC)."""
    with _paper_style():
        fig, (ax,) = _panels(1)
        colors = sns.color_palette("colorblind", len(fits))
        _draw_points(ax, fits[0], "0.2", "observed")
        for fit, color in zip(fits, colors, strict=True):
            _draw_law(ax, fit, color, f"{fit.law.form} (AIC {fit.law.aic:.0f})", band=False)
        _label(ax, fits[0])
        ax.legend(frameon=False)
        return _save(fig, out)


def plot_backtest(selection: Backtest, out: Path, x_name: str = "subset_size") -> list[Path]:
    """Rolling backtest: each form's log-RMSE against the cut-off, marker area by its weight."""
    cutoffs = selection.cutoffs.dropna(subset=["log_rmse"])
    forms = list(dict.fromkeys(cutoffs["form"]))
    with _paper_style():
        fig, (ax,) = _panels(1)
        for name, color in zip(forms, sns.color_palette("colorblind", len(forms)), strict=True):
            rows = cutoffs[cutoffs["form"] == name]
            style = "-" if name == selection.chosen else ":"
            ax.plot(rows["cutoff"], rows["log_rmse"], style, color=color, lw=1.2, label=name)
            ax.scatter(rows["cutoff"], rows["log_rmse"], s=30 * rows["weight"], color=color)
        _log_axes(ax)
        ax.set_xlabel(f"cut-off: largest {_x_label(x_name)} fitted")
        ax.set_ylabel("log-RMSE of the predictions beyond")
        ax.legend(frameon=False, fontsize=7)
        return _save(fig, out)


def plot_joint(fit: MetricFit, out: Path, *, flops_per_nd: float = 6.0) -> list[Path]:
    """Iso-error contours of a joint law over (N, D), the runs, and the compute-optimal frontier.

    The frontier minimises the law at each compute budget C = flops_per_nd · N · D.
    """
    law = fit.law
    n_lim = (law.x[:, 0].min() / 2, law.x[:, 0].max() * EXTRAPOLATE)
    d_lim = (law.x[:, 1].min() / 2, law.x[:, 1].max() * EXTRAPOLATE)
    n_grid, d_grid = np.meshgrid(np.geomspace(*n_lim, 120), np.geomspace(*d_lim, 120))
    err = law.predict(np.column_stack([n_grid.ravel(), d_grid.ravel()])).reshape(n_grid.shape)
    norm = LogNorm(err.min(), err.max())
    compute = np.geomspace(flops_per_nd * n_lim[0] * d_lim[0], flops_per_nd * n_lim[1] * d_lim[1])
    n_opt, d_opt = compute_optimal(law, compute, flops_per_nd)
    inside = (n_opt >= n_lim[0]) & (n_opt <= n_lim[1]) & (d_opt >= d_lim[0]) & (d_opt <= d_lim[1])
    with _paper_style():
        fig, (ax,) = _panels(1, height=3.0)
        lines = ax.contour(
            n_grid, d_grid, err, levels=np.geomspace(err.min(), err.max(), 9), norm=norm
        )
        ax.clabel(lines, fmt="%.3g", fontsize=8)
        dots = ax.scatter(law.x[:, 0], law.x[:, 1], c=law.y, norm=norm, s=14, edgecolor="k", lw=0.4)
        ax.plot(n_opt[inside], d_opt[inside], "--", color="0.2", label="compute-optimal")
        ax.set(xscale="log", yscale="log", xlim=n_lim, ylim=d_lim)
        ax.set_xlabel(_x_label(fit.x_name[0]))
        ax.set_ylabel(_x_label(fit.x_name[1]))
        bar = fig.colorbar(dots, ax=ax, label=_error_label(fit.metric))
        _plain_log_ticks(bar.ax.yaxis)
        ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))
        return _save(fig, out)


# ---------------------------------------------------------------------------
# Drawing pieces


def _draw_fit(ax, fit: MetricFit, color, label: str | None) -> None:
    _draw_points(ax, fit, color, None)
    _draw_law(ax, fit, color, label, band=True)


def _draw_points(ax, fit: MetricFit, color, label: str | None) -> None:
    points = fit.points
    spread = points["std"].fillna(0.0)
    ax.errorbar(points["x"], points["mean"], yerr=spread, fmt="o", ms=3, capsize=2, color=color)
    if label:
        ax.plot([], [], "o", ms=3, color=color, label=label)


def _draw_law(ax, fit: MetricFit, color, label: str | None, *, band: bool) -> None:
    """The law over the data (solid), beyond it (dashed) and its bootstrap band."""
    x_min, x_max = fit.law.x.min(), fit.law.x.max()
    seen = np.geomspace(x_min, x_max, 100)
    beyond = np.geomspace(x_max, x_max * EXTRAPOLATE, 50)
    ax.plot(seen, fit.law.predict(seen), "-", color=color, lw=1.2, label=label)
    ax.plot(beyond, fit.law.predict(beyond), "--", color=color, lw=1.2)
    if band and len(fit.law.bootstrap):
        both = np.concatenate([seen, beyond])
        low, high = fit.law.predict_ci(both)
        ax.fill_between(both, low, high, color=color, alpha=0.2, lw=0)
    _log_axes(ax)


def _log_axes(ax) -> None:
    """Log-log axes, the error axis with plain tick labels."""
    ax.set(xscale="log", yscale="log")
    _plain_log_ticks(ax.yaxis)


def _plain_log_ticks(axis) -> None:
    """Label a log axis at 1, 2, 5 × 10^k in plain numbers (0.2, not 2×10⁻¹)."""
    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.StrMethodFormatter("{x:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _label(ax, fit: MetricFit) -> None:
    ax.set_xlabel(_x_label(fit.x_name))
    ax.set_ylabel(_error_label(fit.metric))


def _error_label(metric: str) -> str:
    name = METRIC_NAMES.get(metric, metric)
    return name if metric in LOSSES else f"1 − {name}"


def _x_label(x_name) -> str:
    name = X_NAMES.get(x_name)
    return f"{name} ({x_name})" if name else str(x_name)


@contextlib.contextmanager
def _paper_style() -> Iterator[None]:
    """Seaborn's paper context and ticks style, for the figures made inside only."""
    with sns.axes_style("ticks"), sns.plotting_context("paper"):
        yield


def _panels(count: int, *, columns: int = 4, height: float = PANEL[1]) -> tuple[Figure, list]:
    """A figure of `count` panels, PANEL inches each, in rows of at most `columns`."""
    n_cols = min(count, columns)
    n_rows = -(-count // n_cols)
    fig = Figure(figsize=(PANEL[0] * n_cols, height * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, list(axes[:count])


def _save(fig: Figure, out: Path) -> list[Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=DPI)
    return paths
