"""The published estimators M1–M4 of Alabdulmohsin, Neyshabur & Zhai (NeurIPS 2022), as released.

Our own code for the algorithms of the released estimators (google-research,
`revisiting_neural_scaling_laws/methods/m1.py … m4.py` with `base.py`), called as the
paper's notebook calls them on the image-classification curves. Each estimator is a
callable `(x, y) -> predict`; the objective is always least squares of log residuals.

- M1: y = β·x^c, one linear regression of log y on (1, log x).
- M2: y = ε∞ + β·x^c. Alternate (a) the regression of log(y − ε∞) on (1, log x) for
  (log β, c) and (b) ε∞ by 1,000 projected gradient steps of rate 1e-8 (the first 100
  rounds), then by 100 projected Newton steps of rate 0.1; ε∞ ∈ [0, min y − 10⁻³].
  Rounds stop when β moves by < 1e-10 after round 101, or after 10,000 rounds.
- M3: y = β·(1/x + γ)^c, c ≥ 0. Alternate the regression of log y on (1, log(1/x + γ))
  (c clipped at 0) and a search over the γ that make each point exact; stop when β moves
  by < 1e-10.
- M4: (y − ε∞)/(ε0 − y)^α = β·x^c. Alternate a non-negative regression of log(y − ε∞) on
  (1, −log x, log(ε0 − y)) for (log β, −c, α) and gradient/Newton steps on (ε∞, ε0), as M2;
  ε0 ∈ [max y + 10⁻³, upper bound + 10⁻³]. A prediction is the best of 10,000 grid points
  w ∈ [0, ε0 − ε∞] for w = f·(ε0 − ε∞ − w)^α.

Where the released M4 departs from the paper: the regression's third column,
log(ε0 − y), is computed once from the *initial* ε0 (1.0 for error rates) and never
updated, while the gradient and Newton steps move ε0 in the objective they see. So
α is fitted for ε0 = 1 whatever ε0 becomes, and the two halves of each round minimise
different objectives. We keep that, as the released code does it. For y that do not
lie below 1 (losses), ε0 starts at max y + 10⁻³ and has no upper bound (the notebook
uses no bound for log-perplexity).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]

MARGIN = 1e-3  # between ε∞, ε0 and the observed errors
ROUNDS = 10_000
GRADIENT_ROUNDS = 100  # rounds of gradient steps before Newton's
GRADIENT_STEPS, GRADIENT_RATE = 1000, 1e-8
NEWTON_STEPS, NEWTON_RATE = 100, 0.1
STOP = 1e-10  # on the change of β between rounds
M4_GRID = 10_000
TINY = 1e-5  # an α or a curvature below this counts as zero


def m1(x: np.ndarray, y: np.ndarray) -> Predict:
    """M1: y = β·x^c by least squares in log-log."""
    curve = Curves.of([(x, y)])
    log_beta, c = (float(v[0]) for v in curve.regress(curve.lx, np.log(curve.y)))
    return lambda q: np.exp(log_beta + c * np.log(q))


def m2(x: np.ndarray, y: np.ndarray) -> Predict:
    """M2: y = ε∞ + β·x^c, ε∞ by projected gradient then Newton steps between regressions."""
    return m2_many([(x, y)])[0]


def m3(x: np.ndarray, y: np.ndarray) -> Predict:
    """M3: y = β·(1/x + γ)^c, c ≥ 0; γ from the values that fit one point exactly."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ly, gamma, beta_before = np.log(y), 0.0, 1.0
    for _ in range(ROUNDS):
        (log_beta, c), *_ = np.linalg.lstsq(
            np.column_stack([np.ones_like(x), np.log(1 / x + gamma)]), ly
        )
        c = max(0.0, c)
        gamma = _m3_gamma(x, ly, log_beta, c, gamma)
        beta = np.exp(log_beta)
        if abs(beta - beta_before) < STOP:
            break
        beta_before = beta
    return lambda q: np.exp(log_beta + c * np.log(1 / q + gamma))


def _m3_gamma(x: np.ndarray, ly: np.ndarray, log_beta: float, c: float, gamma: float) -> float:
    """The γ ≥ 0, among the current one and those exact at one point (in order of x), of
    least error."""

    def error(g: np.ndarray) -> np.ndarray:
        log_f = log_beta + c * np.log(1 / x[:, None] + g[None, :])
        return np.linalg.norm(ly[:, None] - log_f, axis=0)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        candidates = np.exp((ly - log_beta) / c) - 1 / x
        candidates = candidates[np.argsort(x, kind="stable")]
        candidates = candidates[candidates >= 0]
        if not len(candidates):
            return gamma
        errors = error(candidates)
    errors[~np.isfinite(errors)] = np.inf
    best = int(np.argmin(errors))
    return float(candidates[best]) if errors[best] < error(np.array([gamma]))[0] else gamma


def m4(x: np.ndarray, y: np.ndarray) -> Predict:
    """M4: (y − ε∞)/(ε0 − y)^α = β·x^c, as released (see the module's note on its ε0)."""
    return m4_many([(x, y)])[0]


@dataclass(frozen=True)
class Curves:
    """Several curves padded to one length, so that M2's and M4's many small steps run for
    all of them at once. Padding repeats a curve's first point and is weighed out of means."""

    lx: np.ndarray  # (B, N) log x
    y: np.ndarray  # (B, N)
    share: np.ndarray  # (B, N) 1/n where a point is real, else 0

    @classmethod
    def of(cls, curves: list[tuple[np.ndarray, np.ndarray]]) -> Curves:
        width = max(len(x) for x, _ in curves)
        lx, y = np.zeros((len(curves), width)), np.zeros((len(curves), width))
        share = np.zeros((len(curves), width))
        for i, (xi, yi) in enumerate(curves):
            xi, yi = np.asarray(xi, float), np.asarray(yi, float)
            lx[i], y[i] = np.log(xi[0]), yi[0]
            lx[i, : len(xi)], y[i, : len(yi)], share[i, : len(xi)] = np.log(xi), yi, 1 / len(xi)
        return cls(lx, y, share)

    def take(self, rows: np.ndarray) -> Curves:
        return Curves(self.lx[rows], self.y[rows], self.share[rows])

    def mean(self, values: np.ndarray) -> np.ndarray:
        return (values * self.share).sum(axis=1)

    def regress(self, z: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Least squares of target on (1, z) per curve: (intercepts, slopes)."""
        z_mean, t_mean = self.mean(z), self.mean(target)
        dz = z - z_mean[:, None]
        slope = self.mean(dz * (target - t_mean[:, None])) / self.mean(dz**2)
        return t_mean - slope * z_mean, slope

    def lowest(self) -> np.ndarray:
        return np.where(self.share > 0, self.y, np.inf).min(axis=1)

    def highest(self) -> np.ndarray:
        return np.where(self.share > 0, self.y, -np.inf).max(axis=1)


def _rounds(size: int, one_round: Callable[[np.ndarray, int], np.ndarray]) -> None:
    """Call `one_round(active rows, k)` for k = 0, 1, … until each curve's β (returned per
    active row) moves by < STOP after round GRADIENT_ROUNDS + 1, as the released loop stops;
    a curve that stops leaves the batch."""
    active, beta_before = np.arange(size), np.ones(size)
    for k in range(ROUNDS):
        beta = one_round(active, k)
        stopped = (np.abs(beta - beta_before[active]) < STOP) & (k > GRADIENT_ROUNDS + 1)
        beta_before[active] = beta
        active = active[~stopped]
        if not len(active):
            return


def m2_many(curves: list[tuple[np.ndarray, np.ndarray]]) -> list[Predict]:
    """M2 fitted to each curve; the curves step together, each stops on its own."""
    data = Curves.of(curves)
    high = data.lowest() - MARGIN
    eps, log_beta, c = high.copy(), np.zeros(len(high)), np.zeros(len(high))

    def one_round(rows: np.ndarray, k: int) -> np.ndarray:
        part = data.take(rows)
        log_beta[rows], c[rows] = part.regress(part.lx, np.log(part.y - eps[rows, None]))
        log_f = log_beta[rows, None] + c[rows, None] * part.lx
        eps[rows] = _m2_steps(part, eps[rows], log_f, high[rows], k >= GRADIENT_ROUNDS)
        return np.exp(log_beta[rows])

    _rounds(len(high), one_round)
    return [
        _m2_predict(float(e), float(b), float(s)) for e, b, s in zip(eps, log_beta, c, strict=True)
    ]


def _m2_predict(eps: float, log_beta: float, c: float) -> Predict:
    return lambda q: eps + np.exp(log_beta + c * np.log(q))


def _m2_steps(data: Curves, eps, log_f, high, newton: bool) -> np.ndarray:
    """One round of ε∞ steps for M2, each projected onto [0, high]."""
    for _ in range(NEWTON_STEPS if newton else GRADIENT_STEPS):
        excess = data.y - eps[:, None]
        residual = np.log(excess) - log_f
        grad = -data.mean(residual / excess)
        if newton:
            eps = eps - NEWTON_RATE * grad / data.mean((1 - residual) / excess**2)
        else:
            eps = eps - GRADIENT_RATE * grad
        eps = np.minimum(np.maximum(eps, 0.0), high)
    return eps


def m4_many(curves: list[tuple[np.ndarray, np.ndarray]]) -> list[Predict]:
    """M4 fitted to each curve; the curves step together, each stops on its own."""
    data = Curves.of(curves)
    eps_high, eps0_low = data.lowest() - MARGIN, data.highest() + MARGIN
    bounded = data.highest() < 1.0  # error rates: ε0 starts at 1 and stays ≤ 1 + margin
    eps0_high = np.where(bounded, 1.0 + MARGIN, np.inf)
    eps, eps0 = eps_high.copy(), np.where(bounded, 1.0, eps0_low)
    design = np.stack([np.ones_like(data.lx), -data.lx, np.log(eps0[:, None] - data.y)], -1)
    regression = Nnls3(design * (data.share > 0)[..., None])
    coef = np.zeros((len(eps), 3))

    def one_round(rows: np.ndarray, k: int) -> np.ndarray:
        part = data.take(rows)
        coef[rows] = regression.solve(rows, np.log(part.y - eps[rows, None]) * (part.share > 0))
        log_f = coef[rows, :1] - coef[rows, 1:2] * part.lx
        bounds = (eps_high[rows], eps0_low[rows], eps0_high[rows])
        eps[rows], eps0[rows] = _m4_steps(
            part, (eps[rows], eps0[rows]), log_f, coef[rows, 2], bounds, k >= GRADIENT_ROUNDS
        )
        return np.exp(coef[rows, 0])

    _rounds(len(eps), one_round)
    return [
        _m4_predict(float(b), float(-mc), float(a), float(e), float(e0))
        for (b, mc, a), e, e0 in zip(coef, eps, eps0, strict=True)
    ]


class Nnls3:
    """Non-negative least squares on a fixed (B, N, 3) design, for many right-hand sides.

    The solution is the best of the unconstrained fits on those subsets of the columns whose
    coefficients are all ≥ 0 (the optimum's support is one of them); the Gram inverses of
    the seven subsets are computed once. Rows of padding are zero in design and target."""

    SUBSETS = tuple(s for r in (1, 2, 3) for s in itertools.combinations(range(3), r))

    def __init__(self, design: np.ndarray) -> None:
        self.design = design
        gram = np.einsum("bni,bnj->bij", design, design)
        self.inverses = [np.linalg.inv(gram[:, s][:, :, s]) for s in self.SUBSETS]

    def solve(self, rows: np.ndarray, target: np.ndarray) -> np.ndarray:
        design = self.design[rows]
        h = np.einsum("bni,bn->bi", design, target)
        best, best_error = np.zeros_like(h), np.sum(target**2, axis=1)
        for s, inverse in zip(self.SUBSETS, self.inverses, strict=True):
            coef = np.zeros_like(h)
            coef[:, s] = np.einsum("bij,bj->bi", inverse[rows], h[:, s])
            error = np.sum((target - np.einsum("bni,bi->bn", design, coef)) ** 2, axis=1)
            better = (coef >= 0).all(axis=1) & (error < best_error)
            best = np.where(better[:, None], coef, best)
            best_error = np.where(better, error, best_error)
        return best


def _m4_steps(data: Curves, errs, log_f, alpha, bounds, newton: bool):
    """One round of (ε∞, ε0) steps for M4, each projected onto their bounds."""
    eps, eps0 = errs
    eps_high, eps0_low, eps0_high = bounds
    a = alpha[:, None]
    for _ in range(NEWTON_STEPS if newton else GRADIENT_STEPS):
        excess, room = data.y - eps[:, None], eps0[:, None] - data.y
        residual = np.log(excess) - a * np.log(room) - log_f
        grad_inf = -data.mean(residual / excess)
        grad_0 = -alpha * data.mean(residual / room)
        if newton:
            h_inf = data.mean((1 - residual) / excess**2)
            h_0 = alpha * data.mean((a + residual) / room**2)
            eps = np.where(np.abs(h_inf) > TINY, eps - NEWTON_RATE * grad_inf / h_inf, eps)
            eps0 = np.where(np.abs(h_0) > TINY, eps0 - NEWTON_RATE * grad_0 / h_0, eps0)
        else:
            eps, eps0 = eps - GRADIENT_RATE * grad_inf, eps0 - GRADIENT_RATE * grad_0
        eps = np.minimum(np.maximum(eps, 0.0), eps_high)
        eps0 = np.minimum(np.maximum(eps0, eps0_low), eps0_high)
    return eps, eps0


def _m4_predict(log_beta: float, c: float, alpha: float, eps: float, eps0: float) -> Predict:
    """y at q from w = f·(b − w)^α, b = ε0 − ε∞, by the best of a grid of w (as released)."""
    b = eps0 - eps
    w = np.linspace(0, b, M4_GRID)

    def predict(q: np.ndarray) -> np.ndarray:
        f = np.exp(log_beta + c * np.log(np.asarray(q, float)))
        if abs(alpha) < TINY:
            return eps + f
        gap = np.abs(w[:, None] - f[None, :] * (b - w[:, None]) ** alpha)
        return eps + w[np.argmin(gap, axis=0)]

    return predict


REFERENCES: dict[str, Callable[[np.ndarray, np.ndarray], Predict]] = {
    "M1": m1,
    "M2": m2,
    "M3": m3,
    "M4": m4,
}
