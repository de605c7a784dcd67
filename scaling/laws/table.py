"""Laws fitted to the tidy results table: one metric, one class, one split at a time.

Laws are fitted to error-like quantities (1 − AUROC, loss, ...), which fall
towards an asymptote as data grows; `error_like` and `from_error` convert to
and from the metric's own units. Only runs with status "finished" are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling.laws.fitting import LawError, LawFit, fit
from scaling.laws.forms import FORMS

SCORES = ("auroc", "auprc", "f1", "recall", "specificity", "precision", "npv")  # higher is better
LOSSES = ("loss",)  # lower is better
SUMMARY_CLASSES = ("micro", "macro", "all")  # not classes of their own
LOG_X_RANGE = (np.log(1e-3), np.log(1e30))  # where `required_x` looks for an answer


def error_like(metric: str, value):
    """The metric as an error: 1 − value for scores (AUROC, F1, ...), the value for loss."""
    if metric in SCORES:
        return 1.0 - value
    if metric in LOSSES:
        return value
    raise LawError(f"metric '{metric}' has no error form; expected one of {SCORES + LOSSES}")


def from_error(metric: str, err):
    """The inverse of `error_like`: an error back in the metric's own units."""
    return error_like(metric, err)  # both maps are their own inverse


def to_metric(
    metric: str, err: float, ci: tuple[float, float]
) -> tuple[float, tuple[float, float]]:
    """An error and its CI in the metric's own units, the CI ordered low to high."""
    value, a, b = (float(v) for v in from_error(metric, np.array([err, *ci])))
    return value, (min(a, b), max(a, b))


@dataclass(frozen=True, eq=False)
class MetricFit:
    """A law fitted to one metric of one class on one split, with the points it was fitted to.

    `points` has one row per x (columns "x", or "N" and "D" for a joint law),
    with the mean, std and number of seeds (runs) of the error-like metric and
    the per-seed values. The law is fitted to those means, weighted by n_seeds.
    """

    metric: str
    cls: str
    split: str
    x_name: str | tuple[str, str]
    points: pd.DataFrame
    law: LawFit


def asymptote(fit: MetricFit) -> tuple[float, tuple[float, float]]:
    """The metric value the law tends to as x grows, with its CI (a power law tends to 0 error)."""
    law = fit.law
    limit = FORMS[law.form].limit
    value = float(limit(np.array(list(law.params.values()))))
    if len(law.bootstrap) == 0:
        return to_metric(fit.metric, value, (np.nan, np.nan))
    low, high = np.quantile(limit(law.bootstrap), [0.025, 0.975])
    return to_metric(fit.metric, value, (float(low), float(high)))


def finished_runs(table: pd.DataFrame, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows of finished runs; a clear error if `columns` are missing or no run finished."""
    missing = [c for c in ("run_id", "status", *columns) if c not in table.columns]
    if missing:
        raise LawError(f"results table lacks the columns {missing}")
    done = table[table["status"] == "finished"]
    if done.empty:
        counts = table.drop_duplicates("run_id")["status"].value_counts().to_dict()
        raise LawError(f"no finished runs in the results table (runs by status: {counts})")
    return done


def metric_rows(table: pd.DataFrame, metric: str, cls: str, split: str) -> pd.DataFrame:
    """Finished rows of one metric, class and split; an error lists what the table has."""
    rows = finished_runs(table, ("split", "class", "metric", "value"))
    for column, wanted in (("metric", metric), ("class", cls), ("split", split)):
        available = sorted(rows[column].dropna().astype(str).unique())
        if wanted not in available:
            raise LawError(
                f"{column} '{wanted}' is not in the finished rows of the results table"
                f"{'' if column == 'metric' else f' for {metric}'}; available: {available}"
            )
        rows = rows[rows[column] == wanted]
    repeated = rows["run_id"][rows["run_id"].duplicated()].unique()
    if len(repeated):
        raise LawError(f"runs {list(repeated[:5])} have several rows for {metric}/{cls}/{split}")
    return rows


def fit_metric(
    table: pd.DataFrame,
    *,
    metric: str = "auroc",
    cls: str = "macro",
    split: str = "test",
    x: str | tuple[str, str] = "subset_size",
    form: str = "saturating",
    n_bootstrap: int = 1000,
    seed: int = 0,
    **options,
) -> MetricFit:
    """Fit `form` to the error of `metric` for class `cls` on `split` against column(s) `x`.

    Each finished run is one seed; the law is fitted to the mean over seeds at
    each x (weights = n_seeds) and the bootstrap resamples seeds within each x.
    Give x as two columns (e.g. ("n_params", "subset_size")) for the joint law.
    Runs where the metric is NaN (e.g. no positives) are left out. `options` go
    to `scaling.laws.fit`.
    """
    x_names = (x,) if isinstance(x, str) else tuple(x)
    rows = metric_rows(table, metric, cls, split)
    missing = [c for c in x_names if c not in rows.columns]
    if missing:
        raise LawError(f"results table lacks the x column(s) {missing}")
    rows = rows[rows["value"].notna()]
    err = np.asarray(error_like(metric, rows["value"].to_numpy(dtype=float)))
    if np.any(err <= 0):
        perfect = rows["run_id"][err <= 0].tolist()[:5]
        raise LawError(
            f"{metric} of {cls} on {split} has zero or negative error in runs {perfect}; "
            "a log-space law needs errors > 0"
        )
    x_values = rows[list(x_names)].to_numpy(dtype=float)
    law = fit(
        x_values[:, 0] if len(x_names) == 1 else x_values,
        err,
        form,
        groups=rows["run_id"].to_numpy(),
        n_bootstrap=n_bootstrap,
        seed=seed,
        **options,
    )
    columns = ["x"] if len(x_names) == 1 else ["N", "D"]
    per_seed = pd.DataFrame(x_values, columns=columns).assign(err=err)
    points = (
        per_seed.groupby(columns, sort=True)["err"]
        .agg(mean="mean", std="std", n_seeds="size", values=tuple)
        .reset_index()
    )
    return MetricFit(metric, cls, split, x if isinstance(x, str) else x_names, points, law)


def summary_classes(metric: str) -> tuple[str, ...]:
    """The summary rows fitted for a metric ("all" for the loss); the headline one last."""
    return ("all",) if metric in LOSSES else ("micro", "macro")


def fit_summaries(
    table: pd.DataFrame, metrics: tuple[str, ...] | list[str], **options
) -> tuple[list[MetricFit], list[tuple[str, str, LawError]]]:
    """`fit_metric` for the summary rows of each metric: the fits, and (metric, class,
    error) for every law that could not be fitted. `options` go to `fit_metric`."""
    fits, failures = [], []
    for metric in metrics:
        for cls in summary_classes(metric):
            try:
                fits.append(fit_metric(table, metric=metric, cls=cls, **options))
            except LawError as e:
                failures.append((metric, cls, e))
    return fits, failures


def required_x(fit: MetricFit, target: float) -> tuple[float, tuple[float, float]] | str:
    """The x at which the law reaches `target` (in metric units, e.g. AUROC 0.95), with a 95% CI.

    Returns "not reachable" when the fitted law never gets there (its asymptote
    E is at or beyond the target, or only past x = 1e30). The CI comes from the
    bootstrap fits; its upper end is inf when some of them never get there.
    Assumes the law decreases in x, as all one-variable forms do.
    """
    form = FORMS[fit.law.form]
    if form.x_columns != 1:
        raise LawError(f"required_x needs a one-variable law, not '{form.name}'")
    err = float(error_like(fit.metric, target))
    if not err > 0:
        raise LawError(f"target {target} for {fit.metric} means zero error, which no law reaches")
    params = np.array([list(fit.law.params.values())])
    (x,) = _solve_x(form, params, np.log(err))
    if not np.isfinite(x):
        return "not reachable"
    if len(fit.law.bootstrap) == 0:
        return float(x), (np.nan, np.nan)
    boot = _solve_x(form, fit.law.bootstrap, np.log(err))
    low, high = np.quantile(boot, [0.025, 0.975], method="inverted_cdf")
    return float(x), (float(low), float(high))


def _solve_x(form, params: np.ndarray, log_target: float) -> np.ndarray:
    """Per row of params, the x where the law hits log_target (bisection in log x); inf if never."""
    theta = form.encode(params)
    low = np.full(len(theta), LOG_X_RANGE[0])
    high = np.full(len(theta), LOG_X_RANGE[1])
    reachable = form.log_predict(theta, high[:, None])[:, 0] <= log_target
    for _ in range(80):
        mid = (low + high) / 2
        above = form.log_predict(theta, mid[:, None])[:, 0] > log_target
        low, high = np.where(above, mid, low), np.where(above, high, mid)
    return np.where(reachable, np.exp(high), np.inf)


def per_class_fits(
    table: pd.DataFrame,
    *,
    metric: str = "auroc",
    split: str = "test",
    x: str = "subset_size",
    form: str = "saturating",
    n_bootstrap: int = 1000,
    seed: int = 0,
    **options,
) -> dict[str, MetricFit | LawError]:
    """A law per class (micro/macro/all left out): its `MetricFit`, or the LawError why none."""
    rows = finished_runs(table, ("split", "class", "metric"))
    rows = rows[(rows["metric"] == metric) & (rows["split"] == split)]
    classes = [c for c in pd.unique(rows["class"]) if c not in SUMMARY_CLASSES]
    if not classes:
        raise LawError(f"no per-class rows for {metric} on {split} among the finished runs")
    fits: dict[str, MetricFit | LawError] = {}
    for cls in classes:
        try:
            fits[cls] = fit_metric(
                table,
                metric=metric,
                cls=cls,
                split=split,
                x=x,
                form=form,
                n_bootstrap=n_bootstrap,
                seed=seed,
                **options,
            )
        except LawError as e:
            fits[cls] = e
    return fits


def per_class_laws(
    table: pd.DataFrame,
    *,
    metric: str = "auroc",
    split: str = "test",
    x: str = "subset_size",
    form: str = "saturating",
    min_positives: int = 10,
    n_bootstrap: int = 1000,
    seed: int = 0,
    fits: dict[str, MetricFit | LawError] | None = None,
    **options,
) -> pd.DataFrame:
    """One row per class: exponent alpha and asymptote E (in metric units) with 95% CIs.

    E here is the metric the law tends to (e.g. AUROC 1 − E_error; a power law
    tends to a perfect metric). `n_pos` is the fewest positives the class has on
    `split` over the runs; `too_few_positives` flags n_pos < min_positives. A
    class whose law cannot be fitted gets NaNs and the reason in `note`. Pass
    `fits` (from `per_class_fits`) to summarise those instead of fitting again.
    """
    if fits is None:
        fits = per_class_fits(
            table,
            metric=metric,
            split=split,
            x=x,
            form=form,
            n_bootstrap=n_bootstrap,
            seed=seed,
            **options,
        )
    rows = finished_runs(table, ("split", "class", "metric"))
    rows = rows[(rows["metric"] == metric) & (rows["split"] == split)]
    n_pos = rows.groupby("class")["n_pos"].min() if "n_pos" in rows else pd.Series()
    out = []
    for cls, result in fits.items():
        row = {"class": cls, "n_pos": n_pos.get(cls, np.nan)}
        row["too_few_positives"] = bool(row["n_pos"] < min_positives)
        row |= dict.fromkeys(("alpha", "alpha_low", "alpha_high", "E", "E_low", "E_high"), np.nan)
        row["note"] = str(result) if isinstance(result, LawError) else ""
        if isinstance(result, MetricFit):
            alpha, (alpha_low, alpha_high) = result.law.params["alpha"], result.law.ci["alpha"]
            row |= {"alpha": alpha, "alpha_low": alpha_low, "alpha_high": alpha_high}
            e, (e_low, e_high) = asymptote(result)
            row |= {"E": e, "E_low": e_low, "E_high": e_high}
        out.append(row)
    return pd.DataFrame(out)
