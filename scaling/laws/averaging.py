"""Model averaging: several law forms weighted by how well each extrapolated in the backtest.

The averaged prediction is the weighted geometric mean of the members'
predictions (a weighted mean of log y), so on every point its log error is at
most the largest of the members'. Its band mixes the members' bands in
proportion to their weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling.laws.fitting import AUTO_FORMS, DELTA, LawFit, fit, quantile_band
from scaling.laws.selection import RULES, Backtest, backtest


@dataclass(frozen=True, eq=False)
class AveragedLaw:
    """Laws of several forms and their weights (summing to 1), with the backtest behind them."""

    members: tuple[LawFit, ...]
    weights: tuple[float, ...]
    selection: Backtest

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The weighted geometric mean of the members' predictions at `x`."""
        logs = np.array([np.log(m.predict(x)) for m in self.members])
        return np.exp(np.asarray(self.weights) @ logs)

    def predict_band(self, x: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise `level` band for one new run at `x` from the members' mixed band draws,
        each member's with its backtest drift beyond the data (as `LawFit.band_draws`)."""
        drift = self.selection.table.set_index("form")["drift"]
        rng = np.random.default_rng(0)
        draws = []
        for member in self.members:
            own = member.band_draws(x)
            spread = drift[member.form] * member.reach(x)
            draws.append(own + rng.normal(0.0, 1.0, own.shape) * spread)
        counts = np.round(np.asarray(self.weights) * max(len(d) for d in draws)).astype(int)
        mixed = [d[rng.integers(0, len(d), c)] for d, c in zip(draws, counts, strict=True)]
        return quantile_band(np.concatenate(mixed), level)


def average(
    x: np.ndarray,
    y: np.ndarray,
    forms: tuple[str, ...] = AUTO_FORMS,
    *,
    target: float | None = None,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    delta: float = DELTA,
    n_bootstrap: int = 1000,
    seed: int = 0,
    min_weight: float = RULES.min_weight,
) -> AveragedLaw:
    """Fit every backtested form of `forms`, weighted as the backtest weights them.

    Forms with a weight below `min_weight` are dropped and the rest renormalised.
    Arguments as for `scaling.laws.fit` with form "auto".
    """
    result = backtest(x, y, forms, target=target, weights=weights, groups=groups, delta=delta)
    kept = result.table[result.table["weight"] >= min_weight]
    members = tuple(
        fit(
            x,
            y,
            name,
            weights=weights,
            groups=groups,
            delta=delta,
            n_bootstrap=n_bootstrap,
            seed=seed,
        )
        for name in kept["form"]
    )
    shares = kept["weight"].to_numpy() / kept["weight"].sum()
    return AveragedLaw(members, tuple(float(w) for w in shares), result)
