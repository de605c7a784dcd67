"""Adaptive rounds against the default log-spaced grid, on simulated studies (no training).

Ground truth is a planted saturating law of the error (1 − macro AUROC) over exams,
err(n) = E + A·n^(−alpha), with log-normal between-seed noise and a run cost proportional to
its size (epoch-bounded training: examples seen ∝ n). The noise level is set from real runs:
0.022 (log-scale standard deviation between seeds of the tiny demo net, `scaling demo`'s
store) and 0.05 (a noisier setting). The pool is CODE-15%'s training pool (311,000 exams).

- The grid is the code15 sweep's sizes (log-spaced 1,000 to 300,000 and the whole pool) at
  2 seeds; repeating it adds 2 seeds everywhere. Its interval after 2 repeats (cost 2·G) is the
  target width.
- Adaptive starts from the grid's 4 smallest sizes at 2 seeds, then runs rounds of G/2 each
  (`scaling.plan.plan_batch`, the same planner as `scaling plan`), refitting after each, with
  the target width as tolerance, until the target is reached or 2·G is spent.

Figures (one JSON line each):

- `adaptive_vs_grid` per question: `compute_ratio` (median over studies of adaptive's compute
  to reach the grid's width / the grid's 2·G; target ≤ 0.5; studies that never reach it count
  as infinite, and a median among them is null), `reached` (share of studies that reached it),
  `grid_without_answer` (studies left out: the grid's interval is unbounded, no width to reach),
  `oracle_ratio` (the same ratio for the c-optimal design at the true law: a floor no design
  reaches below, in the delta method's approximation; when it is above 0.5 the grid is
  already near-optimal for the question and the target cannot be met), and
  `coverage_adaptive` / `coverage_grid` (share of final 95% intervals holding the truth;
  target ≥ 0.90).
- `planning_time`: seconds for one round's planning (law fit with 200 bootstrap refits + the
  greedy batch) with 50 finished runs (target < 30 s on 2 cores).

    python benchmarks/adaptive.py [--studies 6] [--bootstrap 100] [--questions size-for]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from scaling.laws import fit
from scaling.plan import (
    Budget,
    Candidate,
    Question,
    Unreachable,
    best_shares,
    candidate_sizes,
    current_answer,
    gradients,
    plan_batch,
    stand_in,
)

POOL = 311_000
GRID_SIZES = [1000, 3129, 9791, 30639, 95873, 300000, POOL]
NOISES = (0.022, 0.05)
LAWS = [(alpha, e) for alpha in (0.3, 0.6) for e in (0.03, 0.1)]  # (alpha, E)
TARGET_RATIO, TARGET_COVERAGE, TARGET_PLAN_S = 0.5, 0.90, 30.0
ROUNDS = 4  # adaptive rounds in the budget: each G/2, a quarter of the repeated grid's cost


def truth(alpha: float, e: float) -> dict[str, float]:
    """A planted law with error 0.4 above E at 1,000 exams."""
    return {"E": e, "A": 0.4 * 1000**alpha, "alpha": alpha}


def errors(law: dict[str, float], x: np.ndarray, sigma: float, rng) -> np.ndarray:
    x = np.asarray(x, float)
    return (law["E"] + law["A"] * x ** -law["alpha"]) * np.exp(rng.normal(0, sigma, len(x)))


def questions(law: dict[str, float]) -> list[tuple[Question, float]]:
    """The three questions with their true answers: the exponent, AUROC at 10× the pool, and
    the exams to reach the AUROC the truth has at 2× the pool (log10)."""
    at = 10 * POOL
    target = 1 - (law["E"] + law["A"] * (2 * POOL) ** -law["alpha"])
    return [
        (Question("exponent"), law["alpha"]),
        (Question("metric-at", at=at), 1 - (law["E"] + law["A"] * at ** -law["alpha"])),
        (Question("size-for", target=target), math.log10(2 * POOL)),
    ]


def refit(x: list[float], y: list[float], n_bootstrap: int):
    groups = np.arange(len(x))
    return fit(np.asarray(x), np.asarray(y), "saturating", groups=groups, n_bootstrap=n_bootstrap)


def grid_study(law, q, sigma, rng, n_bootstrap) -> tuple[float, float, object]:
    """Width, cost and answer of the grid at 2 seeds, repeated twice (4 seeds everywhere)."""
    x = [float(s) for s in GRID_SIZES for _ in range(4)]
    y = list(errors(law, x, sigma, rng))
    answer = current_answer(refit(x, y, n_bootstrap), q)
    return answer.width, float(sum(x)), answer


def adaptive_study(law, q, sigma, rng, n_bootstrap, target: float, budget: float):
    """Cost at which adaptive rounds first reach `target` width (inf if never), the final
    answer, and its width."""
    x = [float(s) for s in GRID_SIZES[:4] for _ in range(2)]
    y = list(errors(law, x, sigma, rng))
    spent, per_round = float(sum(x)), budget / ROUNDS
    law_fit = refit(x, y, n_bootstrap)
    answer = _answer(law_fit, q)
    while (answer is None or answer.width > target) and spent < budget:
        budget_now = Budget(min(per_round, budget - spent), "examples")
        candidates = _candidates(x)
        if answer is None:  # the target is out of the law's reach: plan as `scaling plan` does
            plan = plan_batch(law_fit, stand_in(q, POOL), candidates, budget_now)
        else:
            plan = plan_batch(law_fit, q, candidates, budget_now, tolerance=target)
        if not plan.picks:
            break
        new = [p.x for p in plan.picks for _ in p.seeds]
        x += new
        y += list(errors(law, new, sigma, rng))
        spent += plan.cost
        law_fit = refit(x, y, n_bootstrap)
        answer = _answer(law_fit, q)
    return (spent if answer and answer.width <= target else math.inf), answer


def _answer(law_fit, q: Question):
    """The current answer, or None while a size-for target is out of the law's reach."""
    try:
        return current_answer(law_fit, q)
    except Unreachable:
        return None


def _candidates(x: list[float]) -> list[Candidate]:
    """The sizes `scaling plan` would offer after runs at `x` (0: the whole pool)."""
    sizes = candidate_sizes(1000, POOL, x)
    return [Candidate(float(s or POOL), s, float(s or POOL)) for s in sizes]


QUESTIONS = ("exponent", "metric-at:10x pool", "size-for:AUROC at 2x pool")


def compare(studies: int, n_bootstrap: int, only: tuple[str, ...] = QUESTIONS) -> list[dict]:
    rows = []
    for qi, name in enumerate(QUESTIONS):
        if not name.startswith(only):
            continue
        ratios, cover_a, cover_g, grid_failed, oracle = [], [], [], 0, []
        for alpha, e in LAWS:
            law = truth(alpha, e)
            q, true = questions(law)[qi]
            oracle.append(oracle_ratio(law, q))
            for sigma in NOISES:
                for study in range(studies):
                    rng = np.random.default_rng([qi, int(alpha * 10), int(e * 100), study])
                    try:
                        target, grid_cost, grid = grid_study(law, q, sigma, rng, n_bootstrap)
                    except Unreachable:  # the grid's law never reaches the target: no width
                        target = math.inf
                    if not math.isfinite(target):  # nor when some refits never reach it
                        grid_failed += 1
                        continue
                    cover_g.append(grid.low <= true <= grid.high)
                    cost, answer = adaptive_study(law, q, sigma, rng, n_bootstrap, target,
                                                  grid_cost)  # fmt: skip
                    ratios.append(cost / grid_cost)  # inf: never reached
                    cover_a.append(answer is not None and answer.low <= true <= answer.high)
        rows.append(
            {
                "figure": "adaptive_vs_grid",
                "question": name,
                "studies": len(ratios) + grid_failed,
                "compute_ratio": _finite(np.median(ratios)),
                "compute_ratio_reached": _finite(np.median([r for r in ratios if r < math.inf])),
                "compute_ratio_target": TARGET_RATIO,
                "oracle_ratio": round(float(np.median(oracle)), 3),
                "reached": round(float(np.mean(np.isfinite(ratios))), 3),
                "grid_without_answer": grid_failed,
                "coverage_adaptive": round(float(np.mean(cover_a)), 3),
                "coverage_grid": round(float(np.mean(cover_g)), 3),
                "coverage_target": TARGET_COVERAGE,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def oracle_ratio(law: dict[str, float], q: Question) -> float:
    """The compute, as a share of the repeated grid's, at which the best split of compute over
    the candidate sizes matches the grid's variance of the answer, by the delta method at the
    true law: the c-optimal design, which no design, adaptive or not, beats in that
    approximation (the noise cancels), searched as `scaling plan` searches its split."""
    grid_x = np.array([float(s) for s in GRID_SIZES for _ in range(4)])
    exact = fit(grid_x, errors(law, grid_x, 0.0, np.random.default_rng(0)), "saturating")
    params = np.array([law["E"], law["A"], law["alpha"]])
    sizes = np.array([float(s or POOL) for s in candidate_sizes(1000, POOL, GRID_SIZES)])
    jac_grid, g = gradients(exact, q, grid_x, params)
    jac, _ = gradients(exact, q, sizes, params)
    grid_var = g @ np.linalg.solve(jac_grid.T @ jac_grid, g)

    def log_ratio(share: np.ndarray) -> float:
        runs = share * grid_x.sum() / sizes
        info = (jac * runs[:, None]).T @ jac
        return math.log(max(g @ np.linalg.lstsq(info, g, rcond=None)[0], 1e-300) / grid_var)

    return math.exp(log_ratio(best_shares(log_ratio, len(sizes))))


def _finite(value: float) -> float | None:
    return round(float(value), 3) if math.isfinite(value) else None


def planning_time(n_runs: int = 50, n_bootstrap: int = 200) -> dict:
    rng = np.random.default_rng(0)
    law = truth(0.5, 0.05)
    x = [float(s) for s in GRID_SIZES for _ in range(n_runs // len(GRID_SIZES) + 1)][:n_runs]
    y = list(errors(law, x, 0.03, rng))
    candidates = _candidates(x)
    started = time.perf_counter()
    for q, _ in questions(law):
        plan_batch(refit(x, y, n_bootstrap), q, candidates, Budget(1e6, "examples"))
    seconds = (time.perf_counter() - started) / 3
    return {
        "figure": "planning_time",
        "finished_runs": n_runs,
        "bootstrap": n_bootstrap,
        "seconds_per_round": round(seconds, 2),
        "target_s": TARGET_PLAN_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=6, help="studies per law and noise")
    parser.add_argument("--bootstrap", type=int, default=100, help="bootstrap refits per fit")
    parser.add_argument(
        "--questions", nargs="+", default=["exponent", "metric-at", "size-for"],
        help="which questions to simulate",
    )  # fmt: skip
    args = parser.parse_args()
    print(json.dumps(planning_time()), flush=True)
    compare(args.studies, args.bootstrap, tuple(args.questions))


if __name__ == "__main__":
    main()
