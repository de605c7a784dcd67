"""Scaling laws: fit power-law forms to metrics, with bootstrap CIs, form selection and costs.

`fit`, `backtest` (rolling-origin form selection) and `average` work on plain
(x, y) arrays; `fit_metric`, `required_x`
and `per_class_laws` on the tidy results table; `cost_of` and
`compute_optimal` turn a law's x into compute; `describe` and
`describe_target` put a fit into words.
"""

from scaling.laws.averaging import AveragedLaw, average
from scaling.laws.compute import compute_optimal, cost_of, flops_per_nd
from scaling.laws.describe import describe, describe_target, format_ci, format_number
from scaling.laws.fitting import AUTO_FORMS, LawError, LawFit, fit
from scaling.laws.forms import FORMS
from scaling.laws.selection import Backtest, backtest
from scaling.laws.table import (
    MetricFit,
    asymptote,
    error_like,
    fit_metric,
    from_error,
    per_class_fits,
    per_class_laws,
    required_x,
    to_metric,
)

__all__ = [
    "AUTO_FORMS",
    "FORMS",
    "AveragedLaw",
    "Backtest",
    "LawError",
    "LawFit",
    "MetricFit",
    "asymptote",
    "average",
    "backtest",
    "compute_optimal",
    "cost_of",
    "describe",
    "describe_target",
    "error_like",
    "fit",
    "fit_metric",
    "flops_per_nd",
    "format_ci",
    "format_number",
    "from_error",
    "per_class_fits",
    "per_class_laws",
    "required_x",
    "to_metric",
]
