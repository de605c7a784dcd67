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
- ``broken2``: the same with two breaks, each with its own (beta, d, f)
  (E, A, alpha, beta, d, f, beta2, d2, f2), d < d2 not enforced.
- ``m3``: estimator M3 of Alabdulmohsin, Neyshabur & Zhai (2022, "Revisiting
  Neural Scaling Laws in Language and Vision"), y = A·(1/x + gamma)^alpha
  (A, gamma, alpha): a power law at small x that flattens to A·gamma^alpha.
- ``m4``: their estimator M4, defined implicitly by
  (y − E)/(E + B − y)^kappa = A·x^(−alpha)  (E, B, A, alpha, kappa).
  In the paper's notation E = ε∞, E + B = ε0 (the error at x → 0, e.g. random
  guessing), A = β, alpha = −c, kappa = α. The error falls from ε0 to ε∞ along
  a sigmoid in log x; kappa = 0 gives the saturating law.
- ``m1``/``m2``: their M1 and M2, the same laws as ``power`` and ``saturating``.
- ``joint``: y = E + A·N^(−alpha) + B·D^(−beta), x two columns (N, D)
  (E, A, B, alpha, beta).

`Form.limit` gives the y a law tends to as x grows (E, 0 for a power law).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import special

MIN_EXPONENT = 1e-6  # exponents are kept > 0
MAX_EXPONENT = 10.0
E_FRACTIONS = (0.0, 0.3, 0.6, 0.85, 0.97)  # start values of E, as fractions of min(y)
EXPONENTS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0)  # start values of alpha


Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]  # theta (..., p), log x -> log y (..., n)
# theta (..., p), log x, log y (..., n) -> (..., n, p)
Jacobian = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


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
    limit: Callable[[np.ndarray], np.ndarray] = lambda params: params[..., 0]  # E by default

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


def _stack(columns: list, log_pred: np.ndarray) -> np.ndarray:
    """Jacobian columns, each broadcastable to the prediction's shape (..., n), as (..., n, p)."""
    return np.stack([np.broadcast_to(c, log_pred.shape) for c in columns], axis=-1)


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
    return _stack([1.0, -lx], log_pred)


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
    _, a, alpha = _columns(theta, 3)
    s_a = np.exp(a - alpha * lx - log_pred)  # share of the A term in the prediction
    return _stack([1.0 - s_a, s_a, -lx * s_a], log_pred)


def _saturating_bounds(lx: np.ndarray, ly: np.ndarray) -> list:
    return [_e_bounds(ly), (None, None), (MIN_EXPONENT, MAX_EXPONENT)]


def _saturating_grid(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    e, alpha = (g.ravel() for g in np.meshgrid(_e_starts(ly), EXPONENTS, indexing="ij"))
    rest = np.log(np.exp(ly) - np.exp(e)[:, None])  # y − E > 0 since E < min(y)
    a = _mean_intercept(rest, alpha[:, None] * lx)
    return np.column_stack([e, a, alpha])


# ---------------------------------------------------------------------------
# broken (1 or 2 breaks): log y = LSE(e, a − alpha·log x − Σ beta·f·softplus((log x − log d)/f))


def _broken_parts(theta: np.ndarray, lx: np.ndarray, breaks: int):
    """e, the log of the A term, and per break (u, softplus(u)) with u = (log x − log d)/f."""
    e, a, alpha = _columns(theta, 3)
    term, bends = a - alpha * lx, []
    for i in range(breaks):
        beta, log_d, f = (theta[..., 3 + 3 * i + j, None] for j in range(3))
        u = (lx - log_d) / f
        softplus = np.logaddexp(0.0, u)  # log(1 + (x/d)^(1/f))
        term = term - beta * f * softplus
        bends.append((u, softplus))
    return e, term, bends


def _broken_predict(breaks: int) -> Predict:
    def predict(theta: np.ndarray, lx: np.ndarray) -> np.ndarray:
        e, term, _ = _broken_parts(theta, lx, breaks)
        return np.logaddexp(e, term)

    return predict


def _broken_jacobian(breaks: int) -> Jacobian:
    def jacobian(theta: np.ndarray, lx: np.ndarray, log_pred: np.ndarray) -> np.ndarray:
        _, term, bends = _broken_parts(theta, lx, breaks)
        s_t = np.exp(term - log_pred)  # share of the A term in the prediction
        columns = [1.0 - s_t, s_t, -lx * s_t]
        for i, (u, softplus) in enumerate(bends):
            beta, f = theta[..., 3 + 3 * i, None], theta[..., 5 + 3 * i, None]
            sigmoid = special.expit(u)
            columns += [
                -f * softplus * s_t,
                beta * sigmoid * s_t,
                -beta * (softplus - u * sigmoid) * s_t,
            ]
        return _stack(columns, log_pred)

    return jacobian


def _broken_bounds(breaks: int):
    def bounds(lx: np.ndarray, ly: np.ndarray) -> list:
        one = [
            (MIN_EXPONENT, MAX_EXPONENT),
            (float(lx.min()), float(lx.max())),  # the break lies inside the data
            (0.01, 10.0),
        ]
        return [_e_bounds(ly), (None, None), (MIN_EXPONENT, MAX_EXPONENT), *one * breaks]

    return bounds


def _broken_start(lx, ly, e, alpha, bends) -> np.ndarray:
    """Grid rows (e, a, alpha, beta, log_d, f, ...) with a fitted; each array of bends (G, 1)."""
    rest = np.log(np.exp(ly) - np.exp(e))
    slope = alpha * lx
    for beta, log_d, f in bends:
        slope = slope + beta * f * np.logaddexp(0.0, (lx - log_d) / f)
    a = _mean_intercept(rest, slope)
    columns = [e[:, 0], a, alpha[:, 0]] + [v[:, 0] for bend in bends for v in bend]
    return np.column_stack(columns)


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
    return _broken_start(lx, ly, e, alpha, [(beta, log_d, f)])


def _broken2_grid(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    q = np.quantile(lx, (0.2, 0.5, 0.8))
    grids = np.meshgrid(
        _e_starts(ly),
        (0.05, 0.25, 0.5),
        (0.2, 0.6),
        (0.2, 0.6),
        (0, 1, 2),  # which pair of break positions
        (0.1, 0.5),
        indexing="ij",
    )
    e, alpha, beta, beta2, pair, f = (g.ravel()[:, None] for g in grids)
    pairs = np.array([(q[0], q[1]), (q[0], q[2]), (q[1], q[2])])[pair[:, 0].astype(int)]
    log_d, log_d2 = pairs[:, :1], pairs[:, 1:]
    return _broken_start(lx, ly, e, alpha, [(beta, log_d, f), (beta2, log_d2, f)])


# ---------------------------------------------------------------------------
# m3: log y = a + alpha·log(1/x + gamma) = a + alpha·LSE(−log x, g)


def _m3_predict(theta: np.ndarray, lx: np.ndarray) -> np.ndarray:
    a, g, alpha = _columns(theta, 3)
    return a + alpha * np.logaddexp(-lx, g)


def _m3_jacobian(theta: np.ndarray, lx: np.ndarray, log_pred: np.ndarray) -> np.ndarray:
    _, g, alpha = _columns(theta, 3)
    return _stack([np.ones_like(lx), alpha * special.expit(g + lx), np.logaddexp(-lx, g)], log_pred)


def _m3_bounds(lx: np.ndarray, ly: np.ndarray) -> list:
    # gamma from far below 1/max(x) (a pure power law) to far above 1/min(x) (flat)
    return [
        (None, None),
        (-float(lx.max()) - 15, -float(lx.min()) + 5),
        (MIN_EXPONENT, MAX_EXPONENT),
    ]


def _m3_grid(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    g_starts = [*-np.quantile(lx, (0.25, 0.5, 0.75, 1.0)), -float(lx.max()) - 3]
    g, alpha = (v.ravel() for v in np.meshgrid(g_starts, EXPONENTS, indexing="ij"))
    a = np.mean(ly - alpha[:, None] * np.logaddexp(-lx, g[:, None]), axis=-1)
    return np.column_stack([a, g, alpha])


def _m3_limit(params: np.ndarray) -> np.ndarray:
    return params[..., 0] * params[..., 1] ** params[..., 2]


# ---------------------------------------------------------------------------
# m4: y = E + B·sigmoid(z), z solving log σ(z) − kappa·log σ(−z) = a − alpha·log x − (1 − kappa)·b


M4_NEWTON_STEPS = 30


def _m4_z(theta: np.ndarray, lx: np.ndarray) -> np.ndarray:
    """z with w = y − E = B·σ(z): Newton on an increasing function, from its asymptotes."""
    _, b, a, alpha, kappa = _columns(theta, 5)
    s = a - alpha * lx - (1.0 - kappa) * b
    kappa = np.broadcast_to(kappa, s.shape)
    z = np.where(s < 0, s, s / kappa)  # φ(z) ≈ z far left, ≈ kappa·z far right
    flat_z, flat_s, flat_k = z.reshape(-1), s.reshape(-1), kappa.reshape(-1)
    active = np.arange(flat_z.size)  # the elements still moving: most settle in 4-5 steps
    for _ in range(M4_NEWTON_STEPS):
        zi, ki = flat_z[active], flat_k[active]
        log_left = special.log_expit(zi)  # log σ(−z) = log σ(z) − z
        left = np.exp(log_left)
        step = ((1.0 - ki) * log_left + ki * zi - flat_s[active]) / (1.0 - left + ki * left)
        flat_z[active] = zi - np.clip(step, -5.0, 5.0)
        active = active[np.abs(step) >= 1e-10]
        if not len(active):
            break
    return flat_z.reshape(s.shape)


def _m4_predict(theta: np.ndarray, lx: np.ndarray) -> np.ndarray:
    e, b = _columns(theta, 2)
    return np.logaddexp(e, b + special.log_expit(_m4_z(theta, lx)))


def _m4_jacobian(theta: np.ndarray, lx: np.ndarray, log_pred: np.ndarray) -> np.ndarray:
    e, b, _, _, kappa = _columns(theta, 5)
    # z back from the prediction: log w − log(B − w), w = y − E
    w = np.exp(log_pred) - np.exp(e)
    z = np.log(np.maximum(w, 1e-300)) - np.log(np.maximum(np.exp(b) - w, 1e-300))
    left, right = special.expit(z), special.expit(-z)  # w/B and (B − w)/B
    dw = np.exp(b) * left * right / (right + kappa * left)  # 1 / (∂F/∂w), F the implicit equation
    inv_y = np.exp(-log_pred)
    return _stack(
        [
            np.exp(e) * inv_y,
            kappa / right * dw * inv_y,  # ∂w/∂log B = kappa·B/(B − w) / ∂F/∂w
            dw * inv_y,
            -lx * dw * inv_y,
            (b + special.log_expit(-z)) * dw * inv_y,
        ],
        log_pred,
    )


def _m4_bounds(lx: np.ndarray, ly: np.ndarray) -> list:
    return [
        _e_bounds(ly),
        (None, float(ly.max()) + np.log(10.0)),  # E + B up to 10× the largest y
        (None, None),
        (MIN_EXPONENT, MAX_EXPONENT),
        (0.01, MAX_EXPONENT),
    ]


def _m4_grid(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    y_max = np.exp(ly.max())
    grids = np.meshgrid(
        _e_starts(ly), (1.002, 1.05, 1.5, 3.0), EXPONENTS[1::2], (0.1, 0.5, 1.0, 2.0), indexing="ij"
    )
    e, top, alpha, kappa = (g.ravel()[:, None] for g in grids)
    span = top * y_max - np.exp(e)  # B, so that E + B is just above the largest y or beyond
    w = np.exp(ly) - np.exp(e)
    a = _mean_intercept(np.log(w) - kappa * np.log(span - w), alpha * lx)
    return np.column_stack([e[:, 0], np.log(span[:, 0]), a, alpha[:, 0], kappa[:, 0]])


# ---------------------------------------------------------------------------
# joint: log y = LSE(e, a − alpha·log N, b − beta·log D)


def _joint_predict(theta: np.ndarray, lx: np.ndarray) -> np.ndarray:
    e, a, b, alpha, beta = _columns(theta, 5)
    return np.logaddexp(np.logaddexp(e, a - alpha * lx[:, 0]), b - beta * lx[:, 1])


def _joint_jacobian(theta: np.ndarray, lx: np.ndarray, log_pred: np.ndarray) -> np.ndarray:
    _, a, b, alpha, beta = _columns(theta, 5)
    log_n, log_d = lx[:, 0], lx[:, 1]
    s_a = np.exp(a - alpha * log_n - log_pred)  # shares of the A and B terms
    s_b = np.exp(b - beta * log_d - log_pred)
    return _stack([1.0 - s_a - s_b, s_a, s_b, -log_n * s_a, -log_d * s_b], log_pred)


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
        limit=lambda params: np.zeros(params.shape[:-1]),
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
    "m3": Form(
        name="m3",
        params=("A", "gamma", "alpha"),
        log_params=(True, True, False),
        x_columns=1,
        log_predict=_m3_predict,
        jacobian=_m3_jacobian,
        bounds=_m3_bounds,
        start_grid=_m3_grid,
        limit=_m3_limit,
    ),
    "m4": Form(
        name="m4",
        params=("E", "B", "A", "alpha", "kappa"),
        log_params=(True, True, True, False, False),
        x_columns=1,
        log_predict=_m4_predict,
        jacobian=_m4_jacobian,
        bounds=_m4_bounds,
        start_grid=_m4_grid,
    ),
    "broken": Form(
        name="broken",
        params=("E", "A", "alpha", "beta", "d", "f"),
        log_params=(True, True, False, False, True, False),
        x_columns=1,
        log_predict=_broken_predict(1),
        jacobian=_broken_jacobian(1),
        bounds=_broken_bounds(1),
        start_grid=_broken_grid,
    ),
    "broken2": Form(
        name="broken2",
        params=("E", "A", "alpha", "beta", "d", "f", "beta2", "d2", "f2"),
        log_params=(True, True, False, False, True, False, False, True, False),
        x_columns=1,
        log_predict=_broken_predict(2),
        jacobian=_broken_jacobian(2),
        bounds=_broken_bounds(2),
        start_grid=_broken2_grid,
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
FORMS["m1"] = replace(FORMS["power"], name="m1")
FORMS["m2"] = replace(FORMS["saturating"], name="m2")
