"""Plain-text summaries of fitted laws, for the command line and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling.laws.compute import cost_of
from scaling.laws.fitting import LawError, LawFit
from scaling.laws.table import MetricFit, asymptote, required_x

FLOOR_AT_ZERO = 1e-9
"""E below this fraction of the smallest y is at its lower bound (exp(−25) of it): zero."""


def format_number(value) -> str:
    """Four significant digits for floats ("–" for NaN); other values as str."""
    if isinstance(value, (float, np.floating)):
        return "–" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def format_ci(value: float, ci: tuple[float, float]) -> str:
    """ "value [low, high]"."""
    return f"{format_number(value)} [{format_number(ci[0])}, {format_number(ci[1])}]"


def describe(fit: MetricFit) -> str:
    """A few lines: what was fitted to what, why that form, the parameters with 95% CIs (exponents
    whose CI reaches a bound marked unidentified), the asymptote."""
    law = fit.law
    runs = int(fit.points["n_seeds"].sum())
    lines = [
        f"{fit.metric} ({fit.cls}, {fit.split}): {law.form} law in {fit.x_name}, "
        f"{len(law.y)} points from {runs} runs, 95% CIs from {len(law.bootstrap)} bootstrap fits"
    ]
    if law.selection is not None:
        lines.append(f"  form chosen by a rolling backtest: {law.selection.reason}")
    lines += [
        f"  {name} = {format_ci(v, law.ci[name])}{caveat(law, name)}"
        for name, v in law.params.items()
    ]
    if fit.law.x.ndim == 1:
        unresolved = " (no floor resolved)" if "E" in law.params and caveat(law, "E") else ""
        lines.append(f"  tends to {fit.metric} {format_ci(*asymptote(fit))}{unresolved}")
    lines.append(f"  Huber loss {law.loss:.3g}, AIC {law.aic:.1f}, BIC {law.bic:.1f}")
    return "\n".join(lines)


def caveat(law: LawFit, name: str) -> str:
    """Why a parameter's value should not be read as measured, if it should not."""
    if name in law.unidentified:
        return " (unidentified: its CI reaches a bound)"
    if name == "E" and law.ci["E"][0] <= float(np.min(law.y)) * FLOOR_AT_ZERO:
        return " (no floor resolved: its CI reaches 0, the points fit a pure power law)"
    return ""


def describe_target(table: pd.DataFrame, fit: MetricFit, target: float) -> str:
    """Where the law reaches `target` (metric units) and what training there costs."""
    name = f"{fit.cls} {fit.metric} {target:g}"
    try:
        needed = required_x(fit, target)
    except LawError as e:
        return f"Target {name}: {e}."
    if isinstance(needed, str):
        return f"Target {name} is {needed}: the law tends to {format_ci(*asymptote(fit))}."
    x, (low, high) = needed
    ci = f" (95% CI {low:,.0f} to {high:,.0f})" if np.isfinite(low) else ""
    text = f"Target {name} needs {fit.x_name} ≈ {x:,.0f}{ci}."
    try:
        cost = cost_of(table, x, x=fit.x_name)
    except LawError as e:
        return f"{text} Its cost is unknown: {e}."
    return (
        f"{text} At that size training sees about {cost['train_examples_seen']:,.0f} examples, "
        f"{cost['flops']:.3g} FLOPs and {cost['wall_time_s'] / 3600:.3g} h at the runs' "
        "throughput."
    )
