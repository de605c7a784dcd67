"""The law forms: their parameters, log-space predictions, gradients, bounds and start grids.

Every form predicts log y from log x in the log-sum-exp parametrisation of
Hoffmann et al. (2022): a sum of positive terms E + A·x^(−alpha) + ... is
computed as LSE(e, a − alpha·log x, ...) with E = exp(e), A = exp(a). The
optimiser works on that internal vector `theta`; `Form.encode`/`Form.decode`
convert it from/to the natural parameters (E, A, alpha, ...).

Forms (natural parameter names, in order):

- ``power``: y = A·x^(−alpha)  (A, alpha)
- ``saturating``: y = E + A·x^(−alpha)  (E, A, alpha)
- ``broken``: the smoothly broken power law of Caballero et al. (2022, "Broken
  Neural Scaling Laws") with one break,
  y = E + A·x^(−alpha)·(1 + (x/d)^(1/f))^(−beta·f)  (E, A, alpha, beta, d, f).
  In the paper's notation E = a (the limit), A = b, alpha = c0 (exponent before
  the break), beta = c1 (added to the exponent after the break), d = d1 (where
  the break is), f = f1 (its sharpness: small f is a sharp kink). Here beta > 0,
  so the curve steepens after the break; flattening is what E describes.
- ``joint``: y = E + A·N^(−alpha) + B·D^(−beta), x two columns (N, D)
  (E, A, B, alpha, beta).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

MIN_EXPONENT = 1e-6  # exponents are kept > 0
MAX_EXPONENT = 10.0
E_FRACTIONS = (0.0, 0.3, 0.6, 0.85, 0.97)  # start values of E, as fractions of min(y)
EXPONENTS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0)  # start values of alpha


Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]  # theta (..., p), log x -> log y (..., n)
Jacobian = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # theta, lx, log y -> (n, p)


@dataclass(frozen=True)
class Form:
    """One law form. `theta` is the internal vector, `log_params` marks its log-encoded entries."""

    name: str
    params: tuple[str, ...]
    log_params: tuple[bool, ...]  # True: theta holds log(param)
    x_columns: int  # 1, or 2 for (N, D)
    log_predict: Predict
    jacobian: Jacobian
    bounds: Callable[[np.ndarray, np.ndarray], list[tuple[float | None, float | None]]]  # lx, ly
    start_grid: Callable[[np.ndarray, np.ndarray], np.ndarray]  # lx, ly -> theta (G, p)

    def encode(self, params: np.ndarray) -> np.ndarray:
        """Natural parameters (..., p) -> theta (..., p)."""
        params = np.asarray(params, dtype=float)
        with np.errstate(divide="ignore"):
            return np.where(self.log_params, np.log(params), params)

    def decode(self, theta: np.ndarray) -> np.ndarray:
        """theta (..., p) -> natural parameters (..., p)."""
        theta = np.asarray(theta, dtype=float)
        return np.where(self.log_params, np.exp(theta), theta)


def _columns(theta: np.ndarray, k: int) -> list[np.ndarray]:
    """The k entries of theta (..., k) as arrays of shape (..., 1), to broadcast over points."""
    return [theta[..., i, None] for i in range(k)]


def _e_bounds(ly: np.ndarray) -> tuple[float, None]:
    """e = log E from effectively 0 (exp(−25) of the smallest y) upwards."""
    return (float(ly.min()) - 25.0, None)


def _e_starts(ly: np.ndarray) -> np.ndarray:
    """Start values of e: fractions of the smallest y, 0 mapped to the lower bound."""
    y_min = np.exp(ly.min())
    with np.errstate(divide="ignore"):
        e = np.log(np.asarray(E_FRACTIONS) * y_min)
    return np.maximum(e, _e_bounds(ly)[0])


def _mean_intercept(log_rest: np.ndarray, slope_terms: np.ndarray) -> np.ndarray:
    """The a that best matches log(term) = a − slope_terms in least squares: mean over points."""
    return np.mean(log_rest + slope_terms, axis=-1)


# ---------------------------------------------------------------------------
# power: log y = a − alpha·log x


def _power_predict(theta: np.ndarray, lx: np.ndarray) -> np.ndarray:
    a, alpha = _columns(theta, 2)
    return a - alpha * lx


def _power_jacobian(theta: np.ndarray, lx: np.ndarray, log_pred: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(lx), -lx], axis=1)


def _power_bounds(lx: np.ndarray, ly: np.ndarray) -> list:
    return [(None, None), (MIN_EXPONENT, MAX_EXPONENT)]


def _power_grid(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    alphas = np.asarray(EXPONENTS)
    a = _mean_intercept(ly, alphas[:, None] * lx)
    slope, intercept = np.polyfit(lx, ly, 1)  # the linear log-log fit
    guess = [intercept, np.clip(-slope, MIN_EXPONENT, MAX_EXPONENT)]
    return np.vstack([np.column_stack([a, alphas]), guess])


# ---------------------------------------------------------------------------
# saturating: log y = LSE(e, a − alpha·log x)


def _saturating_predict(theta: np.ndarray, lx: np.ndarray) -> np.ndarray:
    e, a, alpha = _columns(theta, 3)
    return np.logaddexp(e, a - alpha * lx)


def _saturating_jacobian(theta: np.ndarray, lx: np.ndarray, log_pred: np.ndarray) -> np.ndarray:
    _, a, alpha = theta
    s_a = np.exp(a - alpha * lx - log_pred)  # share of the A term in the prediction
    return np.stack([1.0 - s_a, s_a, -lx * s_a], axis=1)


def _saturating_bounds(lx: np.ndarray, ly: np.ndarray) -> list:
    return [_e_bounds(ly), (None, None), (MIN_EXPONENT, MAX_EXPONENT)]


def _saturating_grid(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    e, alpha = (g.ravel() for g in np.meshgrid(_e_starts(ly), EXPONENTS, indexing="ij"))
    rest = np.log(np.exp(ly) - np.exp(e)[:, None])  # y − E > 0 since E < min(y)
    a = _mean_intercept(rest, alpha[:, None] * lx)
    return np.column_stack([e, a, alpha])


# ---------------------------------------------------------------------------
# broken: log y = LSE(e, a − alpha·log x − beta·f·softplus((log x − log d)/f))


def _broken_parts(theta: np.ndarray, lx: np.ndarray):
    e, a, alpha, beta, log_d, f = _columns(theta, 6)
    u = (lx - log_d) / f
    softplus = np.logaddexp(0.0, u)  # log(1 + (x/d)^(1/f))
    return e, a - alpha * lx - beta * f * softplus, u, softplus


def _broken_predict(theta: np.ndarray, lx: np.ndarray) -> np.ndarray:
    e, term, _, _ = _broken_parts(theta, lx)
    return np.logaddexp(e, term)


def _broken_jacobian(theta: np.ndarray, lx: np.ndarray, log_pred: np.ndarray) -> np.ndarray:
    beta, f = theta[3], theta[5]
    _, term, u, softplus = _broken_parts(theta, lx)
    s_t = np.exp(term - log_pred)  # share of the A term in the prediction
    sigmoid = special.expit(u)
    return np.stack(
        [
            1.0 - s_t,
            s_t,
            -lx * s_t,
            -f * softplus * s_t,
            beta * sigmoid * s_t,
            -beta * (softplus - u * sigmoid) * s_t,
        ],
        axis=1,
    )


def _broken_bounds(lx: np.ndarray, ly: np.ndarray) -> list:
    return [
        _e_bounds(ly),
        (None, None),
        (MIN_EXPONENT, MAX_EXPONENT),
        (MIN_EXPONENT, MAX_EXPONENT),
        (float(lx.min()), float(lx.max())),  # the break lies inside the data
        (0.01, 10.0),
    ]


def _broken_grid(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    grids = np.meshgrid(
        _e_starts(ly),
        (0.05, 0.1, 0.25, 0.5, 1.0),
        (0.1, 0.3, 0.6, 1.2),
        np.quantile(lx, (0.25, 0.5, 0.75)),
        (0.1, 0.5, 1.5),
        indexing="ij",
    )
    e, alpha, beta, log_d, f = (g.ravel()[:, None] for g in grids)
    rest = np.log(np.exp(ly) - np.exp(e))
    bend = beta * f * np.logaddexp(0.0, (lx - log_d) / f)
    a = _mean_intercept(rest, alpha * lx + bend)
    return np.column_stack([e[:, 0], a, alpha[:, 0], beta[:, 0], log_d[:, 0], f[:, 0]])


# ---------------------------------------------------------------------------
# joint: log y = LSE(e, a − alpha·log N, b − beta·log D)


def _joint_predict(theta: np.ndarray, lx: np.ndarray) -> np.ndarray:
    e, a, b, alpha, beta = _columns(theta, 5)
    return np.logaddexp(np.logaddexp(e, a - alpha * lx[:, 0]), b - beta * lx[:, 1])


def _joint_jacobian(theta: np.ndarray, lx: np.ndarray, log_pred: np.ndarray) -> np.ndarray:
    _, a, b, alpha, beta = theta
    log_n, log_d = lx[:, 0], lx[:, 1]
    s_a = np.exp(a - alpha * log_n - log_pred)  # shares of the A and B terms
    s_b = np.exp(b - beta * log_d - log_pred)
    return np.stack([1.0 - s_a - s_b, s_a, s_b, -log_n * s_a, -log_d * s_b], axis=1)


def _joint_bounds(lx: np.ndarray, ly: np.ndarray) -> list:
    return [
        _e_bounds(ly),
        (None, None),
        (None, None),
        (MIN_EXPONENT, MAX_EXPONENT),
        (MIN_EXPONENT, MAX_EXPONENT),
    ]


def _joint_grid(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    exponents = (0.1, 0.25, 0.5, 0.75, 1.0)
    grids = np.meshgrid(_e_starts(ly), exponents, exponents, (0.25, 0.5, 0.75), indexing="ij")
    e, alpha, beta, share = (g.ravel()[:, None] for g in grids)
    rest = np.log(np.exp(ly) - np.exp(e))  # split y − E between the two terms by `share`
    a = _mean_intercept(rest + np.log(share), alpha * lx[:, 0])
    b = _mean_intercept(rest + np.log1p(-share), beta * lx[:, 1])
    return np.column_stack([e[:, 0], a, b, alpha[:, 0], beta[:, 0]])


FORMS: dict[str, Form] = {
    "power": Form(
        name="power",
        params=("A", "alpha"),
        log_params=(True, False),
        x_columns=1,
        log_predict=_power_predict,
        jacobian=_power_jacobian,
        bounds=_power_bounds,
        start_grid=_power_grid,
    ),
    "saturating": Form(
        name="saturating",
        params=("E", "A", "alpha"),
        log_params=(True, True, False),
        x_columns=1,
        log_predict=_saturating_predict,
        jacobian=_saturating_jacobian,
        bounds=_saturating_bounds,
        start_grid=_saturating_grid,
    ),
    "broken": Form(
        name="broken",
        params=("E", "A", "alpha", "beta", "d", "f"),
        log_params=(True, True, False, False, True, False),
        x_columns=1,
        log_predict=_broken_predict,
        jacobian=_broken_jacobian,
        bounds=_broken_bounds,
        start_grid=_broken_grid,
    ),
    "joint": Form(
        name="joint",
        params=("E", "A", "B", "alpha", "beta"),
        log_params=(True, True, True, False, False),
        x_columns=2,
        log_predict=_joint_predict,
        jacobian=_joint_jacobian,
        bounds=_joint_bounds,
        start_grid=_joint_grid,
    ),
}
