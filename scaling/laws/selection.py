"""Choosing a law form by how well it extrapolated: a rolling-origin backtest.

For each cut-off k (the k smallest distinct x; at most `MAX_CUTOFFS` values of
k, spaced geometrically from half the distinct x to all but one) every form is fitted
to the points up to the cut-off and predicts the points beyond it, out to the
same ratio as the extrapolation asked for (`target` / largest x; at least the
next x). Seeds at one x are one point (their mean), so cut-offs fall between
sizes, never between seeds. A cut-off's error is the RMSE of log prediction −
log y; a form's score is the weighted RMS over cut-offs, with weights that
fall off with the distance (in units of the requested horizon) between the
cut-off and `largest x / ratio`, the cut-off whose test spans exactly the
requested horizon with the most data. A form that cannot be fitted at a
cut-off scores the worst error of the others there.

The forms that extrapolated as well as the best are those whose weighted mean
squared error is within `Rules.se_multiple` standard errors (over cut-offs) of the best's. Of
those the chosen form is the one with the fewest parameters among the ones whose
BIC on all points is within `Rules.bic_margin` of their lowest: a form must earn its
extra parameters by a strong fit to all the data, the largest sizes included,
which the backtest tests least. `average` weights forms by a power of 1/score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling.laws.fitting import (
    AUTO_FORMS,
    DELTA,
    LawError,
    _checked,
    _data_and_resamples,
    _form,
    check_falls,
    fit,
    fit_prefixes,
)

MAX_CUTOFFS = 6
EXTRAPOLATION = 10.0  # the default target, as a multiple of the largest x


@dataclass(frozen=True)
class Rules:
    """How backtest scores become a choice and averaging weights.

    `RULES` holds the values chosen on the tune halves of two development sets and
    checked on their held-out halves (`benchmarks/rules.py`).
    """

    se_multiple: float = 1.0  # within this many standard errors of the best: as good as it
    bic_margin: float = 6.0  # "strong" evidence for the lower BIC (Kass & Raftery 1995)
    weight_power: float = 2.0  # averaging weight ∝ score^−weight_power
    min_weight: float = 0.01  # members of the average below this weight are dropped


RULES = Rules()


@dataclass(frozen=True, eq=False)
class Backtest:
    """The rolling-origin backtest of several forms on one curve, and which form it chose.

    `table`: one row per form with `log_rmse` (the weighted score), `drift` (how
    its log error grew with the distance ahead: RMS error over RMS log(x / cut-off),
    weighted over cut-offs like the score), `rel_error`
    (weighted mean |prediction − y| / y over the backtest predictions),
    `weight` (its share in the averaged model), `aic`/`bic` of the fit to all
    points, `chosen` and `note` (why a form was left out). `cutoffs`: one row
    per form and cut-off with the largest x fitted (`cutoff`), the points
    fitted and predicted, the `log_rmse` and `drift` there and the cut-off's `weight`.
    `reason` says in words why `chosen` won.
    """

    table: pd.DataFrame
    cutoffs: pd.DataFrame
    chosen: str
    reason: str
    target: float

    def scores(self) -> Scores:
        """What the rules decide from (`decide(backtest.scores(), rules)`)."""
        return scores(self.table, _filled(self.cutoffs))


def backtest(
    x: np.ndarray,
    y: np.ndarray,
    forms: tuple[str, ...] = AUTO_FORMS,
    *,
    target: float | None = None,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    delta: float = DELTA,
) -> Backtest:
    """Rolling-origin backtest of `forms` towards the x `target` (default 10× the largest x).

    For two-column x (N, D) the cut-offs run over N·D. Forms needing more
    points than the first cut-off has are left out with a note; LawError if
    none is left or there are too few distinct x for a cut-off.
    """
    laws = [_form(name) for name in forms]
    if not laws or len({law.x_columns for law in laws}) > 1:
        raise LawError(f"backtest needs forms of the same x layout, got {list(forms)}")
    x, y, weights, groups = _checked(x, y, weights, groups, laws[0])
    x, y, weights, _ = _data_and_resamples(x, y, weights, groups, 0, 0)
    size = x if x.ndim == 1 else x.prod(axis=1)
    order = np.argsort(size, kind="stable")
    x, y, weights, size = x[order], y[order], weights[order], size[order]
    if laws[0].x_columns == 1:
        check_falls(x, y, weights)  # not at the cut-offs: too few points there
    n = len(size)
    needed = {law.name: len(law.params) + 1 for law in laws}
    first = max(math.ceil(n / 2), min(needed.values()))
    if first > n - 1:
        raise LawError(
            f"a backtest needs a cut-off with at least {min(needed.values())} points "
            f"before the largest x; there are {n} distinct x"
        )
    ks, cut_weights, ratio = _cutoffs(size, first, target)
    contest = [law.name for law in laws if needed[law.name] <= first]
    fits = {name: fit_prefixes(x, y, weights, name, list(ks), delta) for name in contest}
    rows = []
    for i, (k, cut_weight) in enumerate(zip(ks, cut_weights, strict=True)):
        ahead = (size > size[k - 1]) & (size <= size[k - 1] * ratio)
        ahead[k] = True  # at least the next x
        for name in contest:
            row = {"form": name, "cutoff": float(size[k - 1]), "n_fitted": int(k)}
            row |= {"n_predicted": int(ahead.sum()), "weight": float(cut_weight)}
            law = fits[name][i]
            if isinstance(law, LawError):
                row |= {"log_rmse": np.nan, "drift": np.nan, "rel_error": np.nan}
                row["note"] = str(law)
            else:
                error = np.log(law.predict(x[ahead]) / y[ahead])
                w = weights[ahead] / weights[ahead].sum()
                reach = np.log(size[ahead] / size[k - 1])
                row |= {"log_rmse": float(np.sqrt(w @ error**2))}
                row |= {"drift": float(np.sqrt((w @ error**2) / (w @ reach**2)))}
                row |= {"rel_error": float(w @ np.abs(np.expm1(error))), "note": ""}
            rows.append(row)
    cutoffs = pd.DataFrame(rows)
    scored = _filled(cutoffs)
    table = _summary(laws, contest, scored, cutoffs, needed, first, x, y, weights, delta)
    chosen = str(table.loc[table["chosen"], "form"].iloc[0])
    return Backtest(table, cutoffs, chosen, _reason(table, cutoffs, ratio), float(ratio * size[-1]))


def _filled(cutoffs: pd.DataFrame) -> pd.DataFrame:
    """`cutoffs` with a form not fitted at a cut-off scored as the worst form there."""
    measures = ["log_rmse", "drift", "rel_error"]
    worst = cutoffs.groupby("cutoff")[measures].transform("max")
    return cutoffs.fillna({m: worst[m] for m in measures})


def _cutoffs(size: np.ndarray, first: int, target: float | None):
    """Cut-offs (number of sorted distinct sizes fitted), their weights, the horizon ratio."""
    ratio = (target if target is not None else EXTRAPOLATION * size[-1]) / size[-1]
    if not ratio > 1:
        raise LawError(f"target {target:g} is not beyond the largest x ({size[-1]:g})")
    n = len(size)
    ks = np.unique(np.round(np.geomspace(first, n - 1, min(MAX_CUTOFFS, n - first)))).astype(int)
    scale = max(math.log(ratio), math.log(2.0))
    weights = np.exp(-np.abs(np.log(size[-1] / size[ks - 1]) - math.log(ratio)) / scale)
    return ks, weights, ratio


def band_coverage(
    x: np.ndarray,
    y: np.ndarray,
    form: str,
    *,
    groups: np.ndarray | None = None,
    target: float | None = None,
    level: float = 0.95,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """How often single runs beyond each backtest cut-off fall inside the `level` band.

    At the cut-offs of `backtest` the form is fitted (with `groups`, seeds
    resampled per x) to the runs up to the cut-off, and its band for one new
    run is checked on every run beyond it, out to the backtest's horizon. One
    row per cut-off: `cutoff`, `runs` checked, `inside` and `coverage`.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    size = np.unique(x)
    ks, _, ratio = _cutoffs(
        size, max(math.ceil(len(size) / 2), len(_form(form).params) + 1), target
    )
    rows = []
    for k in ks:
        train = x <= size[k - 1]
        ahead = (x > size[k - 1]) & ((x <= size[k - 1] * ratio) | (x == size[k]))
        law = fit(
            x[train],
            y[train],
            form,
            groups=None if groups is None else np.asarray(groups)[train],
            n_bootstrap=n_bootstrap,
            seed=seed,
        )
        low, high = law.predict_band(x[ahead], level)
        inside = int(np.sum((y[ahead] >= low) & (y[ahead] <= high)))
        rows.append({"cutoff": float(size[k - 1]), "runs": int(ahead.sum()), "inside": inside})
    table = pd.DataFrame(rows)
    return table.assign(coverage=table["inside"] / table["runs"])


def _summary(laws, contest, scored, cutoffs, needed, first, x, y, weights, delta) -> pd.DataFrame:
    """One row per form: weighted scores, averaging weights, AIC/BIC and the choice."""
    rows = []
    for law in laws:
        row = {"form": law.name, "n_params": len(law.params), "log_rmse": np.nan, "drift": np.nan}
        row |= {"rel_error": np.nan, "aic": np.nan, "bic": np.nan, "note": ""}
        if law.name not in contest:
            row["note"] = f"needs {needed[law.name]} points; the first cut-off has {first}"
            rows.append(row)
            continue
        mine = scored[scored["form"] == law.name]
        if cutoffs.loc[cutoffs["form"] == law.name, "log_rmse"].isna().all():
            row["note"] = cutoffs.loc[cutoffs["form"] == law.name, "note"].iloc[-1]
            rows.append(row)
            continue
        w = mine["weight"].to_numpy() / mine["weight"].sum()
        row["log_rmse"] = float(np.sqrt(w @ mine["log_rmse"].to_numpy() ** 2))
        row["drift"] = float(np.sqrt(w @ mine["drift"].to_numpy() ** 2))
        row["rel_error"] = float(w @ mine["rel_error"].to_numpy())
        failed = cutoffs[(cutoffs["form"] == law.name) & cutoffs["log_rmse"].isna()]
        if len(failed):
            row["note"] = f"not fitted at {len(failed)} cut-offs (scored as the worst form there)"
        (full,) = fit_prefixes(x, y, weights, law.name, [len(y)], delta)
        if isinstance(full, LawError):
            row["note"] = str(full)
        else:
            row |= {"aic": full.aic, "bic": full.bic}
        rows.append(row)
    table = pd.DataFrame(rows)
    if not np.isfinite(table["log_rmse"].to_numpy(float)).any():
        reasons = "; ".join(f"{r.form}: {r.note}" for r in table.itertuples())
        raise LawError(f"no form could be backtested ({reasons})")
    weights, chosen = decide(scores(table, scored))
    table = table.assign(weight=weights, chosen=np.arange(len(table)) == chosen)
    columns = ["form", "n_params", "log_rmse", "drift", "rel_error", "weight", "aic", "bic"]
    return table[[*columns, "chosen", "note"]]


@dataclass(frozen=True)
class Scores:
    """What the rules decide from, one entry per form: the backtest score (weighted log-RMSE,
    NaN if not backtested), the weighted mean squared error in excess of the best form's and
    its standard error over cut-offs (inf and 0 if not backtested), parameters and BIC."""

    score: np.ndarray
    excess: np.ndarray
    se: np.ndarray
    n_params: np.ndarray
    bic: np.ndarray


def scores(table: pd.DataFrame, scored: pd.DataFrame) -> Scores:
    """`Scores` of `table`'s forms (`form`, `n_params`, `log_rmse`, `bic`) from the per-cut-off
    errors `scored` (`form`, `cutoff`, `log_rmse`, `weight`; failed fits already scored)."""
    score = table["log_rmse"].to_numpy(float)
    errors = scored.pivot(index="cutoff", columns="form", values="log_rmse") ** 2
    w = scored.groupby("cutoff")["weight"].first().loc[errors.index].to_numpy()
    w = w / w.sum()
    best = errors[table["form"].iloc[int(np.nanargmin(score))]].to_numpy()
    excess, se = np.full(len(table), np.inf), np.zeros(len(table))
    for i, form in enumerate(table["form"]):
        if form in errors and np.isfinite(score[i]):
            diff = errors[form].to_numpy() - best
            excess[i] = w @ diff
            se[i] = np.sqrt(np.sum(w**2 * (diff - excess[i]) ** 2))
    n_params = table["n_params"].to_numpy(int)
    return Scores(score, excess, se, n_params, table["bic"].to_numpy(float))


def decide(s: Scores, rules: Rules = RULES) -> tuple[np.ndarray, int]:
    """The averaging weights (a power of 1/score, summing to 1) and the index of the chosen
    form: of the forms within `rules.se_multiple` standard errors of the best, the one with
    the fewest parameters (then the lowest BIC) among those whose BIC is within
    `rules.bic_margin` of their lowest (all of them if none has a BIC)."""
    finite = np.isfinite(s.score)
    inverse = np.where(finite, 1.0 / np.maximum(np.where(finite, s.score, 1.0), 1e-12), 0.0)
    inverse = inverse**rules.weight_power
    near = s.excess <= rules.se_multiple * s.se + 1e-15
    bic = np.where(near & np.isfinite(s.bic), s.bic, np.inf)
    if np.isfinite(bic).any():
        near &= np.isfinite(bic) & (bic <= bic.min() + rules.bic_margin)
    order = np.lexsort((np.where(np.isfinite(s.bic), s.bic, np.inf), s.n_params))
    chosen = int(order[near[order]][0])
    return inverse / inverse.sum(), chosen


def _reason(table: pd.DataFrame, cutoffs: pd.DataFrame, ratio: float) -> str:
    """Why the chosen form won, in one sentence."""
    best = table[table["chosen"]].iloc[0]
    others = table[~table["chosen"]].dropna(subset=["log_rmse"]).sort_values("log_rmse")
    beaten = len(others) == 0 or best["log_rmse"] <= others["log_rmse"].iloc[0]
    lead = (
        "extrapolated best"
        if beaten
        else f"is the simplest with a strong BIC within {RULES.se_multiple:g} standard errors "
        "of the best"
    )
    peak = cutoffs.loc[cutoffs["weight"].idxmax(), "cutoff"]
    text = (
        f"{best['form']} {lead}: weighted log-RMSE {best['log_rmse']:.3g} "
        f"(mean error {100 * best['rel_error']:.2g}%) over {cutoffs['cutoff'].nunique()} "
        f"cut-offs from {cutoffs['cutoff'].min():g} to {cutoffs['cutoff'].max():g}, each "
        f"predicting up to {ratio:.3g}× ahead, weighted most at {peak:g}"
    )
    if len(others):
        text += f"; next {others['form'].iloc[0]} ({others['log_rmse'].iloc[0]:.3g})"
    left_out = table.loc[table["log_rmse"].isna(), "form"].tolist()
    if left_out:
        text += f"; not compared: {', '.join(left_out)}"
    return text
