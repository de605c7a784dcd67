"""Speed of the law fitter's bootstrap, against plain `scipy.optimize.curve_fit` in the same run.

Each figure is one JSON line on stdout:

- `bootstrap_saturating`: seconds (wall and CPU) for `scaling.laws.fit` of the 3-parameter
  saturating law to 20 points with 1,000 bootstrap refits (target: < 10 s on 2 cores);
- `bootstrap_broken`: the same for the 6-parameter broken law on 30 points.

The reference (`reference_s`) is a loop of `curve_fit` (Levenberg-Marquardt least squares in
linear space, no bounds, started at the planted law for its full-data fit and warm-started
from that for each refit) over 1,000 resamples of the same points; `ratio` is our seconds over
the reference's. Ours does more per refit: a Huber loss in log space under bounds.

    python benchmarks/laws.py [--n-bootstrap 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from scipy.optimize import curve_fit

from scaling.laws import fit

TARGET_S = 10.0  # for 1,000 refits of a 3-parameter law on 20 points


def saturating(x, e, a, alpha):
    return e + a * x**-alpha


def broken(x, e, a, alpha, beta, d, f):
    return e + a * x**-alpha * (1 + (x / d) ** (1 / f)) ** (-beta * f)


CASES = {  # name: (law, planted parameters, x)
    "saturating": (saturating, (0.05, 2.0, 0.35), np.geomspace(100, 1e5, 20)),
    "broken": (broken, (0.01, 1.0, 0.05, 0.6, 3000.0, 0.3), np.geomspace(100, 1e6, 30)),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap refits per fit")
    return p.parse_args()


def emit(figure: str, **values: object) -> None:
    print(json.dumps({"figure": figure, **values}), flush=True)


def timed(function, *args, **kwargs) -> tuple[object, float, float]:
    """function(*args, **kwargs), its wall and its CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def curve_fit_loop(law, x, y, planted, n_bootstrap: int) -> int:
    """curve_fit on n_bootstrap resamples of (x, y); returns how many failed to converge."""
    failures = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow and covariance warnings of poor resamples
        start, _ = curve_fit(law, x, y, p0=planted, maxfev=10_000)
        for index in np.random.default_rng(0).integers(0, len(x), (n_bootstrap, len(x))):
            try:
                curve_fit(law, x[index], y[index], p0=start, maxfev=10_000)
            except RuntimeError:
                failures += 1
    return failures


def main() -> None:
    args = parse_args()
    for name, (law, planted, x) in CASES.items():
        y = law(x, *planted) * np.exp(np.random.default_rng(1).normal(0, 0.02, len(x)))
        result, wall, cpu = timed(fit, x, y, name, n_bootstrap=args.n_bootstrap)
        failures, ref_wall, ref_cpu = timed(curve_fit_loop, law, x, y, planted, args.n_bootstrap)
        emit(
            f"bootstrap_{name}",
            points=len(x),
            parameters=len(planted),
            n_bootstrap=args.n_bootstrap,
            seconds=round(wall, 3),
            cpu_seconds=round(cpu, 3),
            reference="scipy.optimize.curve_fit loop",
            reference_s=round(ref_wall, 3),
            reference_cpu_s=round(ref_cpu, 3),
            reference_failures=failures,
            ratio=round(wall / ref_wall, 2),
            target_s=TARGET_S if name == "saturating" else None,
            bootstrap_fits=len(result.bootstrap),
        )


if __name__ == "__main__":
    main()
