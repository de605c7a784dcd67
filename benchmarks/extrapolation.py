"""Extrapolation on real learning curves of two domains: our law forms, `auto` and the averaged
model against the published estimators M1–M4 (Alabdulmohsin, Neyshabur & Zhai, NeurIPS 2022)
and BNSL (Caballero et al., ICLR 2023), as released (`references.py`, `bnsl.py`).

Sets (`curves.py`): the paper's 72 image-classification curves (fit the Training = 1 rows,
predict the Training = 0 rows), and LCDB 1.0 (sklearn learners × OpenML datasets; 1 −
accuracy, mean over seeds; fit the anchors up to a quarter of the largest, predict the rest),
a fixed sample of `--lcdb-curves` of its curves. Each set is split by dataset into a "tune"
half, on which every rule and constant of `scaling.laws` is chosen, and a "held-out" half,
which is the one to quote. Error per curve: RMSE of log(prediction) − log(actual).

Prints one line per curve, then JSON lines per set and half: `median_ratio` (median over
curves of a method's error over the best reference's on that curve), `share_at_or_below_best`,
`same_form` (median of our form's error over the reference of the same form: power/M1,
saturating/M2, m3/M3, m4/M4, broken/BNSL), `band_coverage` (share of held-out points inside
the 95% band of one run); then `time` and `one_curve` (seconds for `auto` with 1,000
bootstrap refits on one planted curve of 20 points).

    python benchmarks/extrapolation.py [--sets vision lcdb] [--lcdb-curves 400] [--curves N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import curves as sets
import numpy as np
import pandas as pd
import references
from bnsl import bnsl

from scaling.laws import AUTO_FORMS, AveragedLaw, LawError, backtest, fit
from scaling.laws.selection import RULES

DATA = sets.VISION.parent
LEVEL = 0.95
REFERENCES = {**references.REFERENCES, "BNSL": bnsl}
SAME_FORM = {"power": "M1", "saturating": "M2", "m3": "M3", "m4": "M4", "broken": "BNSL"}
METHODS = (*AUTO_FORMS, "auto", "average")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", choices=("vision", "lcdb"), default=["vision", "lcdb"])
    p.add_argument("--vision", type=Path, default=sets.VISION, help="the vision curves' CSV")
    p.add_argument("--lcdb-curves", type=int, default=400, help="LCDB curves in the sample")
    p.add_argument("--curves", type=int, help="only the first N curves of each set")
    p.add_argument("--n-bootstrap", type=int, default=100, help="bootstrap refits per form")
    p.add_argument("--jobs", type=int, default=os.cpu_count(), help="processes for our fits")
    p.add_argument("--tables", type=Path, help="write each set's per-curve errors to DIR/SET.csv")
    return p.parse_args(argv)


def load(name: str, args: argparse.Namespace) -> list[tuple[str, sets.Curve]]:
    """(half, curve) of one set, in the set's order; the halves are those of the whole set."""
    curves = sets.vision(args.vision) if name == "vision" else sets.lcdb(limit=args.lcdb_curves)
    half = {c.name: h for h, members in sets.halves(curves).items() for c in members}
    return [(half[c.name], c) for c in curves[: args.curves]]


def log_rmse(prediction: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.log(prediction) - np.log(actual)) ** 2)))


def ours(curve: sets.Curve, n_bootstrap: int) -> dict[str, object]:
    """Errors of each form, `auto` and the average; band coverage of both; BNSL's error."""
    started = time.perf_counter()
    try:
        out = _our_methods(curve, n_bootstrap)
    except LawError:  # no law to fit (e.g. a flat curve): every method of ours fails there
        out = {m: np.nan for m in METHODS} | {"chosen": "none"}
        out |= {"inside_auto": 0, "inside_average": 0}
    out["seconds_ours"] = time.perf_counter() - started
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["BNSL"] = _error(bnsl, curve)
    out["seconds_bnsl"] = time.perf_counter() - started
    return out


def _our_methods(curve: sets.Curve, n_bootstrap: int) -> dict[str, object]:
    x, y, x_test, y_test = curve.x, curve.y, curve.x_test, curve.y_test
    selection = backtest(x, y, AUTO_FORMS, target=float(x_test.max()))
    laws, out = {}, {}
    for name in AUTO_FORMS:
        try:
            laws[name] = fit(x, y, name, n_bootstrap=n_bootstrap)
            out[name] = log_rmse(laws[name].predict(x_test), y_test)
        except LawError:
            out[name] = np.nan
    weights = selection.table.set_index("form")["weight"]
    members = [name for name in laws if weights.get(name, 0.0) >= RULES.min_weight]
    shares = weights[members].to_numpy() / weights[members].sum()
    averaged = AveragedLaw(tuple(laws[m] for m in members), tuple(shares), selection)
    chosen = laws[selection.chosen]
    out |= {"chosen": selection.chosen, "auto": out[selection.chosen]}
    out["average"] = log_rmse(averaged.predict(x_test), y_test)
    for name, model in (("auto", chosen), ("average", averaged)):
        low, high = model.predict_band(x_test, LEVEL)
        out[f"inside_{name}"] = int(np.sum((y_test >= low) & (y_test <= high)))
    return out


def published(curves: list[sets.Curve]) -> pd.DataFrame:
    """Errors of M1–M4 per curve; M2 and M4 fitted to all curves at once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # logs of tiny excess errors at poor trial points
        points = [(c.x, c.y) for c in curves]
        many = {"M2": references.m2_many(points), "M4": references.m4_many(points)}
        rows = []
        for i, curve in enumerate(curves):
            row = {"M1": _error(references.m1, curve), "M3": _error(references.m3, curve)}
            row |= {
                name: log_rmse(fitted[i](curve.x_test), curve.y_test)
                for name, fitted in many.items()
            }
            rows.append(row)
    return pd.DataFrame(rows)[["M1", "M2", "M3", "M4"]]


def _error(estimator, curve: sets.Curve) -> float:
    try:
        return log_rmse(estimator(curve.x, curve.y)(curve.x_test), curve.y_test)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return np.nan


def run_set(name: str, args: argparse.Namespace) -> pd.DataFrame:
    """One row per curve of the set: half, our errors, the references' errors."""
    members = load(name, args)
    curves = [c for _, c in members]
    with get_context("fork").Pool(args.jobs) as pool:
        results = pool.starmap(ours, [(c, args.n_bootstrap) for c in curves], chunksize=1)
    started = time.perf_counter()
    table = published(curves)
    table["seconds_published"] = (time.perf_counter() - started) / max(len(curves), 1)
    rows = pd.DataFrame(results)
    table = pd.concat([rows, table], axis=1)
    table.insert(0, "curve", [c.name for c in curves])
    table.insert(1, "half", [h for h, _ in members])
    table.insert(2, "n_test", [len(c.x_test) for c in curves])
    cells = [*METHODS, *REFERENCES]
    print("curve".ljust(24), "half".ljust(8), " ".join(m.rjust(8) for m in cells), "chosen")
    for row in table.itertuples():
        values = " ".join(f"{getattr(row, m):8.4f}" for m in cells)
        print(row.curve[:24].ljust(24), row.half.ljust(8), values, row.chosen, flush=True)
    return table


def summarise(name: str, table: pd.DataFrame) -> None:
    """The JSON figures of one set, per half."""
    for half, part in table.groupby("half", sort=False):
        best = part[list(REFERENCES)].min(axis=1)
        context = {"set": name, "half": half, "curves": len(part)}
        ratio = {m: _median(part[m] / best) for m in METHODS}
        share = {m: float((part[m] <= best).mean()) for m in METHODS}
        refs = {r: _median(part[r] / best) for r in REFERENCES}
        emit("median_ratio", **context, **ratio, references=refs)
        emit("share_at_or_below_best", **context, **share)
        same = {f"{m}/{r}": _median(part[m] / part[r]) for m, r in SAME_FORM.items()}
        emit("same_form", **context, **same)
        n_test = int(part["n_test"].sum())
        coverage = {m: float(part[f"inside_{m}"].sum() / n_test) for m in ("auto", "average")}
        emit("band_coverage", **context, level=LEVEL, points=n_test, **coverage)


def _median(ratio: pd.Series) -> float:
    """Median of a per-curve ratio; a method that failed on a curve counts as infinitely worse."""
    return float(ratio.fillna(np.inf).median())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seconds = {}
    for name in args.sets:
        table = run_set(name, args)
        if args.tables:
            args.tables.mkdir(parents=True, exist_ok=True)
            table.to_csv(args.tables / f"{name}.csv", index=False)
        summarise(name, table)
        seconds[name] = {
            "curves": len(table),
            "ours_per_curve": round(float(table["seconds_ours"].mean()), 2),
            "bnsl_per_curve": round(float(table["seconds_bnsl"].mean()), 2),
            "m1_m4_per_curve": round(float(table["seconds_published"].iloc[0]), 2),
        }
    emit("time", n_bootstrap=args.n_bootstrap, jobs=args.jobs, **seconds)
    emit("one_curve", **one_curve_seconds())
    return 0


def one_curve_seconds() -> dict[str, float]:
    """Seconds for `auto` (every form's backtest and the chosen form's 1,000 bootstrap refits)
    on a planted saturating curve of 20 points, 1% noise (target: < 10 s on 2 cores)."""
    x = np.geomspace(100, 1e5, 20)
    y = (0.05 + 2.0 * x**-0.35) * np.exp(np.random.default_rng(0).normal(0, 0.01, 20))
    started = time.perf_counter()
    law = fit(x, y, "auto", n_bootstrap=1000)
    return {
        "points": 20,
        "n_bootstrap": 1000,
        "chosen": law.form,
        "seconds": round(time.perf_counter() - started, 2),
        "target_s": 10.0,
    }


def emit(figure: str, **values: object) -> None:
    print(json.dumps({"figure": figure, **values}), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
