"""Choosing the law code's rules on the tune halves, reported on the held-out halves.

The rules are the Huber transition δ of every fit (`scaling.laws.fitting.DELTA`) and the
constants of `scaling.laws.selection.Rules`: how many standard errors from the best
backtest score a form may be and still count as good as it, the BIC margin among those,
the power of 1/score that weights the averaged model and the smallest weight it keeps.

For every curve of both development sets (`curves.py`, the same curves and halves as
`extrapolation.py`) and every δ of `DELTAS`, one pass records what any rule needs: the
backtest's per-cut-off errors, each form's BIC, and each form's full-data prediction at the
held-out points (no bootstrap). Every combination of rules is then scored without refitting:
per set and half, the median over curves of `auto`'s and the average's error over the best
reference's (M1–M4, BNSL) on that curve. The chosen combination is the one with the lowest
mean over both sets' tune halves of the larger of the two medians (the average must not be
worse than `auto`, and both must hold); its held-out figures are the ones to quote.

    python benchmarks/rules.py --cache DIR [--lcdb-curves 400] [--jobs 2]

The pass is cached in DIR (one pickle per set and δ): rerunning evaluates again for free.
Prints one JSON line per set and half for the current and the chosen rules, then `chosen`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import pickle
import sys
import warnings
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import curves
import extrapolation
import numpy as np
import pandas as pd

from scaling.laws import AUTO_FORMS, LawError, backtest, fit
from scaling.laws.fitting import DELTA
from scaling.laws.selection import RULES, Rules, decide

DELTAS = (1e-3, 1e-2, 1.0)
METHODS = ("auto", "average")
Z95 = 1.959964
GRID = {
    "se_multiple": (0.0, 0.5, 1.0, 2.0),
    "bic_margin": (0.0, 2.0, 6.0, 10.0, np.inf),
    "weight_power": (1.0, 2.0, 4.0, 8.0),
    "min_weight": (0.01, 0.05, 0.2),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, required=True, help="folder of the recorded passes")
    p.add_argument("--sets", nargs="+", choices=("vision", "lcdb"), default=["vision", "lcdb"])
    p.add_argument("--vision", type=Path, default=curves.VISION, help="the vision curves' CSV")
    p.add_argument("--lcdb-curves", type=int, default=400, help="LCDB curves in the sample")
    p.add_argument("--curves", type=int, help="only the first N curves of each set")
    p.add_argument("--jobs", type=int, default=os.cpu_count(), help="processes for the pass")
    return p.parse_args(argv)


def record(curve, delta: float) -> dict[str, object]:
    """What any rule needs of one curve fitted with Huber δ `delta`."""
    x, y, x_test = curve.x, curve.y, curve.x_test
    out: dict[str, object] = {"name": curve.name, "log_y_test": np.log(curve.y_test)}
    try:
        result = backtest(x, y, AUTO_FORMS, target=float(x_test.max()), delta=delta)
    except LawError:
        return out | {"scores": None}
    out["scores"] = result.scores()
    out["forms"] = result.table["form"].tolist()
    out["drift"] = result.table["drift"].to_numpy(float)
    out["reach"] = np.log(x_test / x.max())
    predictions, noise = {}, {}
    for name in AUTO_FORMS:
        with contextlib.suppress(LawError):
            law = fit(x, y, name, n_bootstrap=0, delta=delta)
            predictions[name], noise[name] = np.log(law.predict(x_test)), law.noise
    return out | {"log_predictions": predictions, "noise": noise}


def passes(name: str, args: argparse.Namespace) -> dict[float, list[dict]]:
    """The recorded pass of each δ over one set, from the cache or computed into it."""
    members = extrapolation.load(name, args)
    out = {}
    for delta in DELTAS:
        path = args.cache / f"{name}-{len(members)}-delta{delta:g}.pkl"
        if not path.exists():
            with warnings.catch_warnings(), get_context("fork").Pool(args.jobs) as pool:
                warnings.simplefilter("ignore")
                rows = pool.starmap(record, [(c, delta) for _, c in members], chunksize=1)
            for (half, _), row in zip(members, rows, strict=True):
                row["half"] = half
            args.cache.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(rows))
        out[delta] = pickle.loads(path.read_bytes())
    return out


def best_reference(name: str, args: argparse.Namespace) -> np.ndarray:
    """Per curve, the error of the best reference (M1–M4, BNSL); cached with the passes."""
    path = args.cache / f"{name}-{args.curves}-{args.lcdb_curves}-references.pkl"
    if not path.exists():
        members = [c for _, c in extrapolation.load(name, args)]
        table = extrapolation.published(members)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table["BNSL"] = [extrapolation._error(extrapolation.bnsl, c) for c in members]
        path.write_bytes(pickle.dumps(table.min(axis=1).to_numpy()))
    return pickle.loads(path.read_bytes())


def errors(rows: list[dict], rules: Rules) -> pd.DataFrame:
    """Per curve: half, held-out points, and for `auto` and the average under `rules` the
    log-RMSE and the held-out points inside an approximate 95% band (normal in log y: run
    noise and backtest drift × reach, and for the average the spread of its members;
    without the bootstrap's spread, so a little narrower than the real bands)."""
    out = []
    for row in rows:
        record = {"half": row["half"], "points": len(row["log_y_test"])}
        record |= {"auto": np.nan, "average": np.nan, "inside_auto": 0, "inside_average": 0}
        if row["scores"] is not None:
            record |= _methods(row, rules)
        out.append(record)
    return pd.DataFrame(out)


def _methods(row: dict, rules: Rules) -> dict[str, float]:
    weights, chosen = decide(row["scores"], rules)
    forms, predictions, truth = row["forms"], row["log_predictions"], row["log_y_test"]
    variance = {
        f: row["noise"][f] ** 2 + (row["drift"][i] * row["reach"]) ** 2
        for i, f in enumerate(forms)
        if f in predictions
    }
    out = {}
    if forms[chosen] in predictions:
        out |= _scored("auto", predictions[forms[chosen]], variance[forms[chosen]], truth)
    kept = [i for i, f in enumerate(forms) if weights[i] >= rules.min_weight and f in predictions]
    if kept:
        w = weights[kept] / weights[kept].sum()
        members = np.array([predictions[forms[i]] for i in kept])
        mixed = w @ members
        spread = w @ np.array([variance[forms[i]] for i in kept]) + w @ (members - mixed) ** 2
        out |= _scored("average", mixed, spread, truth)
    return out


def _scored(name: str, log_prediction, variance, log_truth) -> dict[str, float]:
    error = log_prediction - log_truth
    inside = int(np.sum(np.abs(error) <= Z95 * np.sqrt(variance)))
    return {name: float(np.sqrt(np.mean(error**2))), f"inside_{name}": inside}


def medians(rows: list[dict], best: np.ndarray, rules: Rules) -> dict[str, dict[str, float]]:
    """{half: {"auto": median ratio to the best reference, "average": ...}}."""
    return {half: f["median_ratio"] for half, f in figures(rows, best, rules).items()}


def figures(rows: list[dict], best: np.ndarray, rules: Rules) -> dict[str, dict]:
    """{half: {"median_ratio": {method: ...}, "coverage": {method: ...}}}."""
    table = errors(rows, rules)
    out = {}
    for half, part in table.groupby("half", sort=False):
        ratio = part[list(METHODS)].div(best[part.index], axis=0).fillna(np.inf)
        out[half] = {
            "median_ratio": {m: float(ratio[m].median()) for m in METHODS},
            "coverage": {
                m: float(part[f"inside_{m}"].sum() / part["points"].sum()) for m in METHODS
            },
        }
    return out


def candidates() -> list[tuple[float, Rules]]:
    keys = list(GRID)
    return [
        (delta, replace(RULES, **dict(zip(keys, values, strict=True))))
        for delta in DELTAS
        for values in itertools.product(*GRID.values())
    ]


def objective(found: dict[str, dict[str, dict[str, float]]]) -> float:
    """Mean over sets of the larger of `auto`'s and the average's median ratio on "tune"."""
    return float(np.mean([max(f["tune"].values()) for f in found.values()]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    recorded = {name: passes(name, args) for name in args.sets}
    best = {name: best_reference(name, args) for name in args.sets}

    def tune(delta: float, rules: Rules) -> float:
        return objective({n: medians(recorded[n][delta], best[n], rules) for n in args.sets})

    scored = [(tune(d, r), d, r) for d, r in candidates()]
    _, delta, rules = min(scored, key=lambda item: item[0])
    for label, (d, r) in (("current", (DELTA, RULES)), ("chosen", (delta, rules))):
        for name in args.sets:
            for half, found in figures(recorded[name][d], best[name], r).items():
                emit("median_ratio", rules=label, set=name, half=half, **found["median_ratio"])
                emit("coverage", rules=label, set=name, half=half, **found["coverage"])
    emit("chosen", delta=delta, **asdict(rules), tune_objective=min(s for s, *_ in scored))
    return 0


def emit(figure: str, **values: object) -> None:
    print(json.dumps({"figure": figure, **values}), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
