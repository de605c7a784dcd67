"""Broken Neural Scaling Laws (Caballero, Gupta, Rish & Krueger, ICLR 2023) as a reference
estimator: our clean-room port of the fitting procedure of the paper's released code.

The law with n breaks:

    y = a + b·x^(−c0) · Π_{i=1..n} (1 + (x/d_i)^(1/f_i))^(−c_i·f_i)

What the release does. Repository `ethancaballero/broken_neural_scaling_laws`, script
`fit_bnsl_and_extrapolate__4_digit_addition__dataset_size_x-axis.py` (Figure 4 left of the
paper; the README names it as the way to reproduce the fit and extrapolation):

1. One break (n = 1): six parameters a, b, c0, c1, d1, f1, all fitted on the raw x.
2. Objective: mean squared error of log(1 + ŷ) against log(1 + y) (their "msle").
3. Grid search with `scipy.optimize.brute` (`finish=None`, so no polish inside brute) over

       a   in 0, 0.1, …, 0.9          (slice(0, 1, 0.1), 10 values)
       b'  in 0, 2.5, …, 37.5         (slice(0, 40, 2.5), 16 values), b  = 1.25^b'  − 0.9
       c0  in 0, 0.25, 0.5, 0.75      (slice(0, 1, 0.25))
       c1  in 0, 0.25, 0.5, 0.75      (slice(0, 1, 0.25))
       d1' in 0, 2.5, …, 37.5         (slice(0, 40, 2.5)), d1 = 1.25^d1' − 0.9
       f1  in 0, 0.25, 0.5, 0.75      (slice(0, 1, 0.25))

   that is 163,840 points; b and d1 live on a geometric grid (base 1.25, offset −0.9, so
   0.1 ≤ b, d1 ≤ 1.25^37.5 − 0.9 ≈ 4,310), the others on a linear one. f1 = 0 is on the grid
   and evaluates, through 1/0 = inf, to a break-free power law. Ties go to the first grid point
   in C order (a slowest, f1 fastest), as `np.argmin` does.
4. Refinement: `scipy.optimize.curve_fit` of log(1 + ŷ(x)) to log(1 + y) (the same objective,
   as a least-squares problem), started at the grid point mapped back to b and d1, with the
   default unbounded Levenberg–Marquardt (MINPACK) and `maxfev=100000000`. No bounds, no
   constraints, no rescaling of x or y. The refined parameters are the fit.

The repository's other fit, `…__noiseless_simulation.py` (Figure 4 right), uses the same
steps with another grid (made for its planted curve) and b, d1 = 1.25^k − 1 + 10⁻⁸; we follow
the main script above.

What ours does: the same law, objective, grid, tie-breaking, start and refinement (the same
`curve_fit` call on the same expression), so on the same data it gives the same parameters.
Where it differs:

- The grid is evaluated as one vectorised numpy computation (the law factorises into a part
  in b·x^(−c0) and a part in (c1, d1, f1)) instead of one Python call per grid point in
  `brute`: 0.02–0.08 s instead of 3–5 s (one worker) for a curve of 10–70 points. The
  grid itself is not coarsened. The powers are taken as the release takes them, one scalar
  exponent at a time, so the grid's objective values, and its minimiser, are bit-identical.
- A grid point whose objective is NaN counts as +inf (brute's `argmin` would return the first
  NaN). On this law and grid none is NaN for x > 0 and y > −1, so this changes nothing there.
- Where `curve_fit` raises (MINPACK ends with ier ∉ {1, 2, 3, 4}) or returns non-finite
  parameters, we keep the grid point instead of stopping with an error.
- Predictions: the law as the release writes it, except where that overflows to inf or NaN;
  there the same law is evaluated through logs (`bnsl_curve_log_space`). LM can run off to
  b ≈ 10⁻²⁰⁰ with c0 ≈ −36 and c1 ≈ 37, where x^(−c0) overflows past the training x while the
  product stays near the data. Nothing is clipped: a fit with a < 0 can still predict ≤ 0.

The refinement is the slow part (17 to about 2·10⁵ law evaluations, up to about 3 s), and
it is chaotic: scipy's MINPACK step can differ in the last bit with memory layout, and over
10⁴–10⁵ evaluations such a bit moves the result: two runs of the release itself can differ by
up to about 10⁻⁵ in the predictions. Run beside the release, ours gave the same bits on 71 of
the 72 vision curves, and predictions within 2·10⁻⁸ on the other.

Mind the scale: the release's grid was made for x from 160 to 928 (the 4-digit-addition curve),
and it fits on the raw x. For much larger x (e.g. 10^7–10^9 examples seen) every grid break
d1 ≤ 4,310 lies before the data, so the grid picks a start that is a power law over the data
and LM has to move the break on its own. We keep that: the point is the released procedure.
(On the vision learning curves, x taken in millions halves the median log error.)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize

BREAKS = 1  # the released fit uses the law with one break

# (start, stop, step) per parameter as in the release's `p_grid`; order a, b', c0, c1, d1', f1
GRID: tuple[tuple[float, float, float], ...] = (
    (0.0, 1.0, 0.1),
    (0.0, 40.0, 2.5),
    (0.0, 1.0, 0.25),
    (0.0, 1.0, 0.25),
    (0.0, 40.0, 2.5),
    (0.0, 1.0, 0.25),
)
BASE = 1.25  # b = BASE**b' − SHIFT and d1 = BASE**d1' − SHIFT on the grid
SHIFT = 0.9
MAXFEV = 100_000_000  # the release's cap on law evaluations in curve_fit


def bnsl_curve(
    x: np.ndarray,
    a: float,
    b: float,
    c0: float,
    c: Sequence[float],
    d: Sequence[float],
    f: Sequence[float],
) -> np.ndarray:
    """The law with len(c) breaks at x: a + b·x^(−c0)·Π (1 + (x/d_i)^(1/f_i))^(−c_i·f_i)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        out = b * x ** (-c0)
        for ci, di, fi in zip(c, d, f, strict=True):
            out = out * (1 + (x / di) ** (1 / fi)) ** (-ci * fi)
        return a + out


def bnsl_curve_log_space(
    x: np.ndarray,
    a: float,
    b: float,
    c0: float,
    c: Sequence[float],
    d: Sequence[float],
    f: Sequence[float],
) -> np.ndarray:
    """The same law through logs: a + exp(log b − c0·log x − Σ c_i·f_i·log(1 + (x/d_i)^(1/f_i))).

    Finite where the direct product overflows (a fit with b → 0 and c0 → −∞ makes x^(−c0)
    overflow while the product stays moderate); needs b, d_i, f_i > 0, else NaN.
    """
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        log_x = np.log(x)
        exponent = np.log(b) - c0 * log_x
        for ci, di, fi in zip(c, d, f, strict=True):
            exponent = exponent - ci * fi * np.logaddexp(0.0, (log_x - np.log(di)) / fi)
        return a + np.exp(exponent)


def one_break(
    x: np.ndarray, a: float, b: float, c0: float, c1: float, d1: float, f1: float
) -> np.ndarray:
    """The law with one break, parameters as the release orders them."""
    p = np.asarray([a, b, c0, c1, d1, f1], dtype=float)  # numpy scalars: 1/0 is inf, no error
    return bnsl_curve(x, p[0], p[1], p[2], p[3:4], p[4:5], p[5:6])


def _log1p_one_break(x: np.ndarray, *p: np.float64) -> np.ndarray:
    """log(1 + law with one break), what the refinement fits; lean, as LM calls it ~10⁵ times.

    Same operations in the same order as `one_break`; wants numpy scalars (1/0 → inf) and
    the caller's `np.errstate`.
    """
    a, b, c0, c1, d1, f1 = p
    return np.log(a + b * x ** (-c0) * (1 + (x / d1) ** (1 / f1)) ** (-c1 * f1) + 1)


def grid_axes() -> list[np.ndarray]:
    """The grid values per parameter, as `np.mgrid[start:stop:step]` makes them."""
    return [
        start + np.arange(math.ceil((stop - start) / step)) * step for start, stop, step in GRID
    ]


def _geometric(values: Iterable[float]) -> list[np.float64]:
    """b and d1 from their grid values, one numpy scalar power at a time (as the release)."""
    return [np.float64(BASE) ** v - SHIFT for v in values]


def grid_objective(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean squared log(1 + ·) error at every grid point, shape (10, 16, 4, 4, 16, 4)."""
    a_s, b_s, c0_s, c1_s, d1_s, f1_s = grid_axes()
    bs, d1s = _geometric(b_s), _geometric(d1_s)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        first = np.stack([x ** (-c0) for c0 in c0_s])  # (c0, x)
        scaled = np.stack([b * first for b in bs])  # (b, c0, x)
        breaks = np.stack(
            [(1 + (x / d1) ** (1 / f1)) ** (-c1 * f1) for c1 in c1_s for d1 in d1s for f1 in f1_s]
        ).reshape(len(c1_s), len(d1s), len(f1_s), len(x))
        core = scaled[:, :, None, None, None, :] * breaks[None, None]
        target = np.log(y + 1)
        out = np.stack([np.mean((np.log((a + core) + 1) - target) ** 2, axis=-1) for a in a_s])
    return np.where(np.isnan(out), np.inf, out)


def grid_search(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The best grid point as law parameters (a, b, c0, c1, d1, f1)."""
    objective = grid_objective(x, y)
    index = np.unravel_index(np.argmin(objective), objective.shape)
    a, b, c0, c1, d1, f1 = (axis[i] for axis, i in zip(grid_axes(), index, strict=True))
    return np.array([a, *_geometric([b]), c0, c1, *_geometric([d1]), f1])


def refine(x: np.ndarray, y: np.ndarray, start: np.ndarray) -> np.ndarray | None:
    """Levenberg–Marquardt on log(1 + law) from `start`; None where MINPACK gives up."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            params, _ = optimize.curve_fit(
                _log1p_one_break, x, np.log(y + 1), p0=list(start), maxfev=MAXFEV
            )
        except RuntimeError:
            return None
    return params if np.all(np.isfinite(params)) else None


@dataclass(frozen=True)
class BNSLFit:
    """A fitted one-break law; call it on x to predict."""

    params: np.ndarray  # a, b, c0, c1, d1, f1
    start: np.ndarray  # the grid point the refinement started from
    refined: bool  # False where the refinement failed and `params` is the grid point

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The law at x as the release evaluates it; through logs where that overflows."""
        x = np.asarray(x, dtype=float)
        direct = one_break(x, *self.params)
        bad = ~np.isfinite(direct)
        if not bad.any():
            return direct
        a, b, c0, c1, d1, f1 = self.params
        return np.where(bad, bnsl_curve_log_space(x, a, b, c0, [c1], [d1], [f1]), direct)


def bnsl(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Fit the released BNSL procedure to sizes x > 0 and error-like y > 0; return its law."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < len(GRID):
        raise ValueError(f"need 1-D x and y of equal length ≥ {len(GRID)}")
    start = grid_search(x, y)
    params = refine(x, y, start)
    return BNSLFit(start if params is None else params, start, params is not None)
