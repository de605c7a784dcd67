"""Fitting a law to (x, y) points: robust log-space fit, bootstrap CIs and prediction bands.

The method follows Hoffmann et al. (2022) as replicated by Epoch (Besiroglu et
al., 2024): minimise the Huber loss of log(prediction) − log(y) with L-BFGS-B,
starting from the best points of a grid (evaluated in one vectorised pass).
Uncertainty comes from bootstrap refits, each warm-started from the full-data
fit. Everything is deterministic given `seed`. A curve that does not fall with
x gets no law, and exponents whose CI reaches a bound are flagged unidentified.
Form selection ("auto") is `scaling.laws.selection`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats
from threadpoolctl import threadpool_limits

from scaling.errors import ScalingError
from scaling.laws.forms import FORMS, MAX_EXPONENT, MIN_EXPONENT, Form

AUTO_FORMS = ("power", "saturating", "m3", "m4", "broken", "broken2")
N_STARTS = 4  # optimiser runs from the best grid points of the full-data fit
NOISE_DRAWS = 20  # single-run noise draws per bootstrap fit in a prediction band
AT_BOUND = 1e-4  # an exponent this close to its bound counts as at it
DELTA = 1e-3  # the Huber loss's transition on log residuals (benchmarks/rules.py)


class LawError(ScalingError):
    """A law cannot be fitted to the given data; the message says why."""


@dataclass(frozen=True, eq=False)
class LawFit:
    """A fitted law: its parameters with 95% bootstrap CIs, and the data it was fitted to.

    `residuals` are log(prediction) − log(y) at the fitted points. `loss` is the
    weighted mean Huber loss of those residuals; `aic` and `bic` treat them as
    Gaussian. `bootstrap` holds the parameters of every bootstrap refit (one row
    each, columns in the order of `params`). `noise` is the log-scale standard
    deviation of a single run (between seeds at one x when there are several,
    else from the residuals). `unidentified` names the exponents whose CI (or,
    without bootstrap, whose estimate) reaches a bound: the data do not pin them
    down. `selection` is the backtest that chose the form (form "auto" only).
    """

    form: str
    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    residuals: np.ndarray
    x: np.ndarray
    y: np.ndarray
    weights: np.ndarray
    loss: float
    aic: float
    bic: float
    delta: float
    bootstrap: np.ndarray
    noise: float = np.nan
    unidentified: tuple[str, ...] = ()
    selection: Any = None  # a scaling.laws.selection.Backtest

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The law's y at `x` (same layout as the fitted x)."""
        form = FORMS[self.form]
        theta = form.encode(list(self.params.values()))
        return np.exp(form.log_predict(theta, _log_x(x, form)))

    def predict_ci(self, x: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise `level` interval of the prediction at `x` over the bootstrap fits."""
        if len(self.bootstrap) == 0:
            raise LawError("this fit has no bootstrap refits; fit with n_bootstrap > 0")
        form = FORMS[self.form]
        log_pred = form.log_predict(form.encode(self.bootstrap), _log_x(x, form))
        low, high = np.quantile(np.exp(log_pred), [(1 - level) / 2, (1 + level) / 2], axis=0)
        return low, high

    def band_draws(self, x: np.ndarray) -> np.ndarray:
        """Log y of one new run at `x` (draws, len(x)): bootstrap fits plus single-run noise.

        A form chosen by backtest adds, beyond the largest fitted x, a normal spread of its
        backtest drift times `reach(x)`: as far off as its extrapolations were, that far ahead.
        """
        if len(self.bootstrap) == 0:
            raise LawError("this fit has no bootstrap refits; fit with n_bootstrap > 0")
        form = FORMS[self.form]
        log_pred = form.log_predict(form.encode(self.bootstrap), _log_x(x, form))
        rng = np.random.default_rng(0)
        draws = log_pred + rng.normal(0.0, self.noise, (NOISE_DRAWS, *log_pred.shape))
        if self.selection is not None:
            table = self.selection.table
            drift = float(table.loc[table["chosen"], "drift"].iloc[0])
            draws += rng.normal(0.0, 1.0, draws.shape) * drift * self.reach(x)
        return draws.reshape(-1, log_pred.shape[-1])

    def reach(self, x: np.ndarray) -> np.ndarray:
        """How far `x` lies beyond the fitted data: log(size / largest fitted size), 0 within
        (size is x, or the product of its columns)."""
        form = FORMS[self.form]
        size = _log_x(x, form).reshape(len(x), -1).sum(1)
        fitted = np.log(self.x).reshape(len(self.x), -1).sum(1).max()
        return np.maximum(size - fitted, 0.0)

    def predict_band(self, x: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise `level` band for one new run at `x`: parameter uncertainty and run noise."""
        return quantile_band(self.band_draws(x), level)


def quantile_band(log_draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The central `level` interval of draws of log y (draws, points), in y units."""
    low, high = np.quantile(log_draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return np.exp(low), np.exp(high)


def fit(
    x: np.ndarray,
    y: np.ndarray,
    form: str = "saturating",
    *,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    delta: float = DELTA,
    n_bootstrap: int = 1000,
    seed: int = 0,
    forms: tuple[str, ...] = AUTO_FORMS,
    target: float | None = None,
) -> LawFit:
    """Fit `form` (a name in `FORMS`, or "auto") to positive (x, y).

    x is one column, or two (N, D) for "joint". `weights` weight the points
    (e.g. number of seeds). With `groups` (e.g. the seed of each raw point), the
    points are averaged per x, weighted by their number of groups, and the
    bootstrap resamples groups within each x (m − 1 draws from an x's m groups,
    which keeps the variance of their mean unbiased for few seeds); otherwise it
    resamples points. A one-column y that does not clearly fall with x (a
    rising or flat log-log slope) raises LawError: there is no law to fit.
    "auto" picks among `forms` by a rolling-origin backtest towards the x
    `target` (`scaling.laws.selection.backtest`); the fit's `selection` says why.
    """
    if form == "auto":
        from scaling.laws.selection import backtest  # selection fits forms with this function

        chosen = backtest(x, y, forms, target=target, weights=weights, groups=groups, delta=delta)
        law = fit(
            x,
            y,
            chosen.chosen,
            weights=weights,
            groups=groups,
            delta=delta,
            n_bootstrap=n_bootstrap,
            seed=seed,
        )
        return replace(law, selection=chosen)
    law = _form(form)
    x, y, weights, groups = _checked(x, y, weights, groups, law)
    noise = _seed_noise(x, y, groups)
    x, y, weights, resamples = _data_and_resamples(x, y, weights, groups, n_bootstrap, seed)
    _check_enough(x, y, law)
    if law.x_columns == 1:
        check_falls(x, y, weights)
    return _fit_form(law, x, y, weights, resamples, delta, noise)


# ---------------------------------------------------------------------------
# Input checks


def _form(name: str) -> Form:
    if name not in FORMS:
        raise LawError(f"unknown law form '{name}'; expected one of {', '.join(FORMS)} or 'auto'")
    return FORMS[name]


def _log_x(x: np.ndarray, form: Form) -> np.ndarray:
    x = _shaped_x(x, form)
    if not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise LawError("x must be finite and positive")
    return np.log(x)


def _shaped_x(x: np.ndarray, form: Form) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if form.x_columns == 1 and x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    expected = (x.ndim == 1) if form.x_columns == 1 else (x.ndim == 2 and x.shape[1] == 2)
    if not expected:
        layout = "one column" if form.x_columns == 1 else "two columns (N, D)"
        raise LawError(f"the '{form.name}' law needs x as {layout}; got shape {x.shape}")
    return x


def _checked(x, y, weights, groups, form: Form):
    """Validated float arrays (x, y, weights or None, groups or None)."""
    x = _shaped_x(x, form)
    y = np.asarray(y, dtype=float)
    if y.ndim != 1 or len(y) != len(x):
        raise LawError(f"y must be one value per x row: {len(x)} x rows, y shape {y.shape}")
    for name, values in (("x", x), ("y", y)):
        bad = np.flatnonzero(~np.isfinite(values).reshape(len(values), -1).all(axis=1))
        if len(bad):
            raise LawError(f"{name} contains NaN or inf (at positions {bad[:5].tolist()})")
        bad = np.flatnonzero((values <= 0).reshape(len(values), -1).any(axis=1))
        if len(bad):
            raise LawError(f"{name} must be positive; non-positive at positions {bad[:5].tolist()}")
    if weights is not None and groups is not None:
        raise LawError("give weights or groups, not both (groups weight each x by its groups)")
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != y.shape or not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise LawError(f"weights must be {len(y)} finite positive numbers")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != y.shape:
            raise LawError(f"groups must be one label per point: {len(y)} points, {groups.shape}")
    return x, y, weights, groups


def _check_enough(x: np.ndarray, y: np.ndarray, form: Form) -> None:
    needed = len(form.params) + 1
    if len(y) < needed:
        raise LawError(
            f"the '{form.name}' law has {len(form.params)} parameters and needs at least "
            f"{needed} points; got {len(y)}"
        )
    if np.ptp(y) == 0:
        raise LawError(f"y is constant ({y[0]:g}); a law needs y that varies with x")
    if len(np.unique(x, axis=0)) < 2:
        raise LawError("x has a single distinct value; a law needs several")


def check_falls(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> None:
    """LawError unless log y falls with log x: the weighted log-log slope must lie more than
    1.645 standard errors below 0 (one-sided 95%, normal: a lenient screen for the few
    sizes of a sweep, where Student's t with 1–2 degrees of freedom would refuse clear falls).

    The slope's standard error comes from the scatter of the (per-x mean) points about the
    line, not from the seeds: runs share seeds across sizes, so seed effects largely cancel
    in the slope.
    """
    lx, ly = np.log(x), np.log(y)
    if len(np.unique(lx)) < 3:
        return  # no degrees of freedom to judge the slope by
    design = np.column_stack([np.ones_like(lx), lx]) * np.sqrt(weights)[:, None]
    (intercept, slope), *_ = np.linalg.lstsq(design, ly * np.sqrt(weights), rcond=None)
    dof = len(ly) - 2
    var = np.sum(weights * (ly - intercept - slope * lx) ** 2) / dof
    se = np.sqrt(var * np.linalg.inv(design.T @ design)[1, 1])
    t = stats.norm.ppf(0.95)
    if slope + t * se >= 0:
        trend = "rises" if slope - t * se > 0 else "is flat within its noise"
        raise LawError(
            f"y does not fall with x: it {trend} (log-log slope {slope:.3g} ± {se:.2g}); "
            "no law was fitted, since any exponent would be meaningless"
        )


# ---------------------------------------------------------------------------
# The data fitted and its bootstrap resamples


def _seed_noise(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> float:
    """Pooled log-scale std of the groups (seeds) at one x; NaN with fewer than 2 per x."""
    if groups is None:
        return np.nan
    cells = pd.DataFrame(x.reshape(len(x), -1)).assign(group=groups, ly=np.log(y))
    keys = list(range(cells.shape[1] - 2))
    per_group = cells.groupby([*keys, "group"])["ly"].mean().reset_index()
    spread = per_group.groupby(keys)["ly"].agg(["var", "size"]).dropna()
    dof = (spread["size"] - 1).sum()
    return float(np.sqrt((spread["var"] * (spread["size"] - 1)).sum() / dof)) if dof else np.nan


def _data_and_resamples(x, y, weights, groups, n_bootstrap: int, seed: int):
    """The points to fit (x, y, weights) and `n_bootstrap` resamples of them as rows of y and
    of weights (each (n_bootstrap, len(y)), over the same x): a point drawn c times weighs c
    times its weight, one not drawn weighs 0."""
    rng = np.random.default_rng(seed)
    if groups is None:
        weights = np.ones_like(y) if weights is None else weights
        index = rng.integers(0, len(y), size=(n_bootstrap, len(y)))
        counts = (index[:, :, None] == np.arange(len(y))).sum(axis=1)  # (n_bootstrap, n)
        return x, y, weights, (np.tile(y, (n_bootstrap, 1)), counts * weights)
    # one value per (x, group): the group's mean; one point per x: the mean over its groups
    x_rows = x.reshape(len(x), -1)
    cells = pd.DataFrame(x_rows).assign(group=groups, y=y)
    cluster = cells.groupby([*range(x_rows.shape[1]), "group"], sort=True)["y"].mean()
    per_x = list(cluster.groupby(level=list(range(x_rows.shape[1])), sort=True))
    keys = np.array([np.atleast_1d(key) for key, _ in per_x], dtype=float)
    x_used = keys[:, 0] if x.ndim == 1 else keys
    values = [g.to_numpy() for _, g in per_x]
    y_used = np.array([v.mean() for v in values])
    weights = np.array([len(v) for v in values], dtype=float)
    # m − 1 draws from the m groups at an x: an unbiased variance (s²/m) of their mean
    draws = [v[rng.integers(0, len(v), (n_bootstrap, max(len(v) - 1, 1)))].mean(1) for v in values]
    y_boot = np.column_stack(draws) if values else np.empty((n_bootstrap, 0))
    return x_used, y_used, weights, (y_boot, np.tile(weights, (n_bootstrap, 1)))


# ---------------------------------------------------------------------------
# The fit itself


def _fit_form(form: Form, x, y, weights, resamples, delta: float, noise: float) -> LawFit:
    lx, ly = np.log(x), np.log(y)
    bounds = form.bounds(lx, ly)
    starts = _starts(form, lx, ly, weights, delta)
    with threadpool_limits(1, "blas"):  # BLAS threads only slow L-BFGS-B on tiny problems
        theta = _minimise(form, lx, ly, weights, starts, bounds, delta)
        y_rows, w_rows = resamples
        lo, hi = _bound_arrays(bounds)
        boot = _minimise_rows(form, lx, np.log(y_rows), w_rows, theta, lo, hi, delta)
    return _record(form, x, y, weights, theta, boot, bounds, delta, noise)


def fit_prefixes(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, form: str, ks: list[int], delta: float
) -> list[LawFit | LawError]:
    """Fits of the first k of checked per-x means for every k of `ks` (a backtest's fits at its
    cut-offs; no bootstrap, no trend check), in one vectorised minimisation: each k's best
    starts are rows, the points past k weighted 0, each row bounded as its own data bounds
    it. A LawError in place of a fit where k points are too few."""
    law = _form(form)
    lx, ly = np.log(x), np.log(y)
    out: dict[int, LawFit | LawError] = {}
    rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    for k in ks:
        try:
            _check_enough(x[:k], y[:k], law)
        except LawError as e:
            out[k] = e
            continue
        lo, hi = _bound_arrays(law.bounds(lx[:k], ly[:k]))
        rows += [(k, start, lo, hi) for start in _starts(law, lx[:k], ly[:k], weights[:k], delta)]
    if rows:
        cut = np.array([k for k, *_ in rows])
        w_rows = np.where(np.arange(len(y)) < cut[:, None], weights, 0.0)
        starts, lo, hi = (np.stack([row[i] for row in rows]) for i in (1, 2, 3))
        ly_rows = np.broadcast_to(ly, w_rows.shape)
        with threadpool_limits(1, "blas"):
            theta = _minimise_rows(law, lx, ly_rows, w_rows, starts, lo, hi, delta)
        r = np.where(w_rows > 0, law.log_predict(theta, lx) - ly_rows, 0.0)
        losses = np.sum(w_rows * special.huber(delta, r), axis=1)
        for k in set(cut.tolist()):
            mine = np.flatnonzero(cut == k)
            best = theta[mine[np.argmin(np.where(np.isfinite(losses[mine]), losses[mine], np.inf))]]
            bounds = law.bounds(lx[:k], ly[:k])
            empty = np.empty((0, len(best)))
            out[k] = _record(law, x[:k], y[:k], weights[:k], best, empty, bounds, delta, np.nan)
    return [out[k] for k in ks]


def _starts(form: Form, lx, ly, weights, delta: float) -> np.ndarray:
    """The N_STARTS points of the form's start grid with the lowest loss."""
    grid = form.start_grid(lx, ly)
    losses = _huber(form.log_predict(grid, lx) - ly, weights, delta)
    return grid[np.argsort(np.where(np.isfinite(losses), losses, np.inf))[:N_STARTS]]


def _bound_arrays(bounds: list) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) as arrays, None as -inf / inf."""
    lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    hi = np.array([np.inf if b[1] is None else b[1] for b in bounds])
    return lo, hi


def _record(form: Form, x, y, weights, theta, boot, bounds, delta: float, noise: float) -> LawFit:
    """The fitted law of (x, y) at `theta`, its bootstrap refits `boot` (internal vectors)."""
    lx, ly = np.log(x), np.log(y)
    params, boot_params = form.decode(theta), form.decode(boot)
    residuals = form.log_predict(theta, lx) - ly
    ci = (
        np.quantile(boot_params, [0.025, 0.975], axis=0)
        if len(boot)
        else np.full((2, len(theta)), np.nan)
    )
    n, k = len(y), len(theta)
    log_var = np.log(max(np.sum(weights * residuals**2) / weights.sum(), 1e-300))
    if np.isnan(noise):  # a mean over w seeds has variance noise² / w
        noise = np.sqrt(np.sum(weights * residuals**2) / max(n - k, 1))
    x, y, weights = x.copy(), y.copy(), weights.copy()  # the record owns its data
    for array in (residuals, x, y, weights, boot_params):
        array.setflags(write=False)
    return LawFit(
        form=form.name,
        params={p: float(v) for p, v in zip(form.params, params, strict=True)},
        ci={p: (float(lo), float(hi)) for p, lo, hi in zip(form.params, *ci, strict=True)},
        residuals=residuals,
        x=x,
        y=y,
        weights=weights,
        loss=float(_huber(residuals, weights, delta) * delta),
        aic=float(n * log_var + 2 * k),
        bic=float(n * log_var + k * np.log(n)),
        delta=delta,
        bootstrap=boot_params,
        noise=float(noise),
        unidentified=_at_bounds(form, bounds, boot if len(boot) else theta[None]),
    )


def _at_bounds(form: Form, bounds: list, thetas: np.ndarray) -> tuple[str, ...]:
    """The exponents whose 95% range over `thetas` (internal vectors) reaches a bound (within
    AT_BOUND: a refit in a flat direction may stop just short of it)."""
    low, high = np.quantile(thetas, [0.025, 0.975], axis=0)
    return tuple(
        name
        for name, (lower, upper), lo, hi in zip(form.params, bounds, low, high, strict=True)
        if (lower, upper) == (MIN_EXPONENT, MAX_EXPONENT)
        and (lo <= lower + AT_BOUND or hi >= upper - AT_BOUND)
    )


def _huber(residuals: np.ndarray, weights: np.ndarray, delta: float) -> np.ndarray:
    """Weighted mean Huber loss over the last axis, divided by delta (so it is O(|r|))."""
    return special.huber(delta, residuals) @ weights / (weights.sum() * delta)


BFGS_ITERATIONS = 400
LINE_SEARCH_HALVINGS = 30
FTOL, GTOL = 1e-12, 1e-9  # as the L-BFGS-B options of `_minimise`
RESTARTS = 8  # restarts of a row from steepest descent (unbounded, m4 refits crawled on)


def _minimise_rows(form: Form, lx, ly, weights, start, lo, hi, delta: float) -> np.ndarray:
    """One fit per row of `ly` and `weights` (B, n), all over the same log x, from `start` and
    within [`lo`, `hi`] (each (k,) or one per row): projected BFGS vectorised over the rows
    (the bootstrap refits of a curve in one pass). A point of weight 0 is left out.

    Each row keeps its own inverse Hessian; a step is the quasi-Newton direction over the
    variables not held at a bound, clipped to the bounds and halved until it decreases the
    loss enough (Armijo). A row stops when its loss stops falling (relative change ≤ FTOL),
    its projected gradient is below GTOL or no step decreases it.
    """
    rows, k = ly.shape[0], np.shape(start)[-1]
    if rows == 0:
        return np.empty((0, k))
    lo, hi = np.broadcast_to(lo, (rows, k)), np.broadcast_to(hi, (rows, k))
    scale = weights / (weights.sum(axis=1, keepdims=True) * delta)
    used = scale > 0 if (scale == 0).any() else None  # where predictions may be left out

    def residuals(log_pred: np.ndarray, at: np.ndarray) -> np.ndarray:
        r = log_pred - ly[at]
        return r if used is None else np.where(used[at], r, 0.0)

    def loss(theta: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The loss of each row, and its log predictions (for its gradient)."""
        log_pred = form.log_predict(theta, lx)
        return np.sum(scale[at] * special.huber(delta, residuals(log_pred, at)), axis=1), log_pred

    def gradient(theta: np.ndarray, at: np.ndarray, log_pred: np.ndarray) -> np.ndarray:
        pull = scale[at] * np.clip(residuals(log_pred, at), -delta, delta)
        jacobian = form.jacobian(theta, lx, log_pred)
        if used is not None:
            jacobian = np.where(used[at][:, :, None], jacobian, 0.0)
        return np.einsum("bn,bnk->bk", pull, jacobian)

    theta = np.clip(np.broadcast_to(start, (rows, k)), lo, hi)
    every = np.arange(rows)
    f, log_pred = loss(theta, every)
    g = gradient(theta, every, log_pred)
    inverse = np.tile(np.eye(k), (rows, 1, 1))
    fresh = np.ones(rows, bool)  # the inverse Hessian is still the identity
    restarts = np.zeros(rows, int)
    live = every[np.isfinite(f)]
    for _ in range(BFGS_ITERATIONS):
        if not len(live):
            break
        th, gr, fl, lo_l, hi_l = theta[live], g[live], f[live], lo[live], hi[live]
        free = ~(((th <= lo_l) & (gr > 0)) | ((th >= hi_l) & (gr < 0)))
        done = np.max(np.abs(gr * free), axis=1) <= GTOL
        direction = -np.einsum("bij,bj->bi", inverse[live], gr * free) * free
        uphill = np.sum(direction * gr, axis=1) >= 0
        direction[uphill] = -(gr * free)[uphill]
        # steepest descent (no curvature known yet) takes a unit step at most, as L-BFGS-B's
        # first iteration does: the gradient of a loss scaled by 1/delta is large
        first = fresh[live] | uphill
        length = np.linalg.norm(direction[first], axis=1, keepdims=True)
        direction[first] /= np.maximum(length, 1.0)
        # backtracking, all pending rows at once
        step, new, f_new = np.ones(len(live)), th.copy(), fl.copy()
        pred_new = np.empty((len(live), len(lx)))
        pending = np.flatnonzero(~done)
        for _ in range(LINE_SEARCH_HALVINGS):
            if not len(pending):
                break
            trial = th[pending] + step[pending, None] * direction[pending]
            trial = np.clip(trial, lo_l[pending], hi_l[pending])
            f_trial, pred_trial = loss(trial, live[pending])
            # Armijo on the step actually taken (clipping can turn it uphill): a real decrease
            decrease = np.minimum(np.sum(gr[pending] * (trial - th[pending]), axis=1), 0.0)
            accept = np.isfinite(f_trial) & (f_trial < fl[pending] + 1e-4 * decrease)
            new[pending[accept]], f_new[pending[accept]] = trial[accept], f_trial[accept]
            pred_new[pending[accept]] = pred_trial[accept]
            step[pending[~accept]] /= 2
            pending = pending[~accept]
        moved = ~done & np.isin(np.arange(len(live)), pending, invert=True)
        stalled = ~done & ~moved
        g_new = gr.copy()
        if moved.any():
            g_new[moved] = gradient(new[moved], live[moved], pred_new[moved])
        s, y = new - th, g_new - gr
        sy = np.sum(s * y, axis=1)
        update = moved & (sy > 1e-12 * np.sqrt(np.sum(s * s, 1) * np.sum(y * y, 1)))
        if update.any():
            h, rho = inverse[live[update]], 1.0 / sy[update]
            first = fresh[live[update]]
            h[first] *= (sy[update] / np.sum(y[update] ** 2, axis=1))[first, None, None]
            left = np.eye(k) - rho[:, None, None] * s[update][:, :, None] * y[update][:, None, :]
            h = left @ h @ left.transpose(0, 2, 1)
            h += rho[:, None, None] * s[update][:, :, None] * s[update][:, None, :]
            inverse[live[update]], fresh[live[update]] = h, False
        theta[live], f[live], g[live] = new, f_new, g_new
        small = (fl - f_new) <= FTOL * np.maximum(np.maximum(np.abs(fl), np.abs(f_new)), 1.0)
        # a row that stalls, or whose loss stops falling, on its quasi-Newton direction starts
        # again from steepest descent (RESTARTS times at most); one that does so there, done
        stuck = stalled | (moved & small)
        retry = stuck & ~fresh[live] & (restarts[live] < RESTARTS)
        inverse[live[retry]], fresh[live[retry]] = np.eye(k), True
        restarts[live[retry]] += 1
        live = live[~(done | (stuck & ~retry))]
    return theta


def _minimise(form: Form, lx, ly, weights, starts, bounds, delta: float) -> np.ndarray:
    """L-BFGS-B from each start; the parameters with the lowest loss."""
    scale = weights / (weights.sum() * delta)

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        log_pred = form.log_predict(theta, lx)
        r = log_pred - ly
        grad = form.jacobian(theta, lx, log_pred).T @ (scale * np.clip(r, -delta, delta))
        return float(scale @ special.huber(delta, r)), grad

    results = [
        optimize.minimize(
            loss_and_grad,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-9},
        )
        for start in starts
    ]
    return min(results, key=lambda r: r.fun).x
