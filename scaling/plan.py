"""Planning the next runs: which subset sizes and seeds narrow a question's 95% interval most
per unit of compute.

A question is one number read off the fitted law: its exponent (`exponent`), the metric at
a size (`metric-at:N`), or the size that reaches a metric value (`size-for:auroc=0.95`).
Its interval now is the wider of the law's bootstrap interval and the delta method's with a
Student t quantile. How much new runs would narrow it is estimated by the delta method: the
law's parameters have covariance σ²·(Σ n·J Jᵀ)⁻¹ over the fitted sizes (J: gradient of the
log prediction in the natural parameters, n: seeds, σ: the single-run log noise), so a new
run at x adds n·J(x)J(x)ᵀ/σ² and the answer's variance follows without refitting. The
variance is averaged over `draws` of the law (the fit and bootstrap refits), so a design is
judged under the laws the data still allow, not the fit alone. A greedy batch then takes,
step by step, the pair of seeds whose expected narrowing per unit of cost is largest until
the budget is spent, first among the pairs of the c-optimal split of the budget. Pairs keep
every planned size at two seeds or more, which the bootstrap needs to see run noise there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import minimize

from scaling.config import RunConfig, canonical, flatten, override, resolve_key
from scaling.laws import FORMS, LawFit, from_error
from scaling.sweep import PlannedRun, Sweep, SweepError

Z95 = 1.959964
SEEDS_PER_PICK = 2
SPLIT_STARTS = 4  # starts of the search for the c-optimal split
DRAWS = 16  # bootstrap refits the design is judged under, besides the fit
RIDGE = 1e-9  # relative to the information matrix's trace: keeps unidentified laws invertible


class PlanError(SweepError):
    """A question or budget cannot be planned for; the message says why."""


class Unreachable(PlanError):
    """The fitted law never reaches a size-for target."""


@dataclass(frozen=True)
class Question:
    kind: str  # "exponent", "metric-at" or "size-for"
    metric: str = "auroc"
    cls: str = "macro"
    split: str = "test"
    at: float = math.nan  # metric-at: the size
    target: float = math.nan  # size-for: the metric value

    def __str__(self) -> str:
        where = f"{self.metric} {self.cls} on {self.split}"
        if self.kind == "exponent":
            return f"exponent of {where}"
        if self.kind == "metric-at":
            return f"{where} at {self.at:,.0f} exams"
        return f"exams for {where} = {self.target:g} (log10)"


@dataclass(frozen=True)
class Budget:
    amount: float
    unit: str  # "hours" (of one worker of the sweep's device) or "examples" (seen in training)

    def __str__(self) -> str:
        return f"{self.amount:g} h" if self.unit == "hours" else f"{self.amount:,.0f} examples"


@dataclass(frozen=True)
class Answer:
    value: float
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class Candidate:
    x: float  # the size the law sees (the pool's size for a whole-pool run)
    subset_size: int  # as the sweep spells it (0: the whole pool)
    cost: float  # of one run, in the budget's unit


@dataclass(frozen=True)
class Pick:
    subset_size: int
    x: float
    seeds: tuple[int, ...]
    cost: float  # of all its runs
    width_after: float  # expected interval width once this and every earlier pick ran


@dataclass(frozen=True)
class Plan:
    question: Question
    budget: Budget
    answer: Answer  # now: the wider of the two intervals below
    bootstrap_width: float  # now, of the bootstrap's interval (inf while unbounded)
    delta_width: float  # now, of the delta method's with a t quantile
    picks: tuple[Pick, ...]

    @property
    def cost(self) -> float:
        return sum(p.cost for p in self.picks)

    @property
    def width_after(self) -> float:
        return self.picks[-1].width_after if self.picks else self.answer.width


def parse_question(
    text: str, *, metric: str = "auroc", cls: str | None = None, split: str = "test"
) -> Question:
    """`exponent`, `metric-at:N` or `size-for:METRIC=VALUE` (the metric there wins); the class
    defaults to macro (all for the loss)."""
    kind, _, arg = text.partition(":")
    m = None
    usage = "expected exponent, metric-at:N or size-for:METRIC=VALUE (e.g. size-for:auroc=0.95)"
    if kind == "size-for" and (m := re.fullmatch(r"([a-z_]+)=(.+)", arg)):
        metric = m.group(1)
    cls = cls or ("all" if metric == "loss" else "macro")
    if kind == "exponent" and not arg:
        return Question("exponent", metric, cls, split)
    if kind == "metric-at":
        at = _number(arg)
        if not at > 0 or not math.isfinite(at):
            raise PlanError(f"question '{text}': N must be a positive number of exams; {usage}")
        return Question("metric-at", metric, cls, split, at=at)
    if kind == "size-for" and m:
        value = _number(m.group(2))
        if not math.isfinite(value):
            raise PlanError(f"question '{text}': '{m.group(2)}' is not a number; {usage}")
        return Question("size-for", metric, cls, split, target=value)
    raise PlanError(f"unknown question '{text}'; {usage}")


def parse_budget(text: str) -> Budget:
    """`2h`, `90min`, `3600s` (worker time) or `5e6ex` / `5e6examples` (examples seen)."""
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*(h|gpuh|min|s|ex|examples)\s*", text)
    amount = _number(m.group(1)) if m else math.nan
    if not m or not amount > 0 or not math.isfinite(amount):
        raise PlanError(
            f"budget '{text}' is not a positive amount with a unit: 2h, 90min, 3600s "
            "(worker time) or 5e6ex (examples seen)"
        )
    unit = m.group(2)
    if unit in ("ex", "examples"):
        return Budget(amount, "examples")
    return Budget(amount * {"h": 1, "gpuh": 1, "min": 1 / 60, "s": 1 / 3600}[unit], "hours")


def _number(text: str) -> float:
    try:
        return float(text.replace("_", "").replace(",", ""))
    except ValueError:
        return math.nan


def answers(law: LawFit, q: Question, params: np.ndarray) -> np.ndarray:
    """The question's answer under each row of natural parameters (rows, p)."""
    form = FORMS[law.form]
    if form.x_columns != 1:
        raise PlanError(f"planning needs a one-variable law, not '{law.form}'")
    theta = form.encode(params)
    if q.kind == "exponent":
        if "alpha" not in law.params:
            raise PlanError(f"the '{law.form}' law has no exponent alpha")
        return params[:, list(law.params).index("alpha")]
    if q.kind == "metric-at":
        log_err = form.log_predict(theta, np.array([math.log(q.at)]))[:, 0]
        return np.asarray(from_error(q.metric, np.exp(log_err)))
    return _log10_size(form, theta, math.log(float(from_error(q.metric, q.target))))


def _log10_size(form, theta: np.ndarray, log_target: float) -> np.ndarray:
    """log10 of the size where each law reaches the error `log_target` (inf if it never does)."""
    low, high = np.zeros(len(theta)), np.full(len(theta), math.log(1e15))
    reachable = form.log_predict(theta, high[:, None])[:, 0] <= log_target
    for _ in range(60):
        mid = (low + high) / 2
        above = form.log_predict(theta, mid[:, None])[:, 0] > log_target
        low, high = np.where(above, mid, low), np.where(above, high, mid)
    return np.where(reachable, high / math.log(10), np.inf)


def bootstrap_answer(law: LawFit, q: Question) -> Answer:
    """The answer of the fitted law and its 95% bootstrap interval."""
    if q.kind == "size-for" and not float(from_error(q.metric, q.target)) > 0:
        raise PlanError(f"size-for target {q.target:g} of {q.metric} means zero error")
    value = float(answers(law, q, np.array([list(law.params.values())]))[0])
    if not math.isfinite(value):
        raise Unreachable(f"the fitted law never reaches {q.metric} {q.target:g}")
    if len(law.bootstrap) == 0:
        raise PlanError("the law has no bootstrap refits; plan with --bootstrap > 0")
    low, high = np.quantile(answers(law, q, law.bootstrap), [0.025, 0.975], method="inverted_cdf")
    return Answer(value, float(low), float(high))


def current_answer(law: LawFit, q: Question) -> Answer:
    """The answer with the wider of its bootstrap interval and its delta-method interval with
    a Student t quantile (degrees of freedom: distinct sizes − parameters), the variance
    averaged over `draws` of the law. With few distinct sizes, as a design concentrated by
    planning has, the bootstrap alone undercovers. A metric's interval ends at its value at
    zero error."""
    return _interval(law, q)[0]


def _interval(
    law: LawFit, q: Question, candidates: np.ndarray | None = None
) -> tuple[Answer, float, float, Design]:
    """`current_answer`, the widths of its two parts (the bootstrap's, the delta method's),
    and the `Design` of the fitted runs (with `candidates`) that gave the delta method's."""
    boot = bootstrap_answer(law, q)
    design = Design(law, q, candidates)
    half = _t(_dof(law.x, law)) * math.sqrt(design.variance())
    low, high = min(boot.low, boot.value - half), max(boot.high, boot.value + half)
    if q.kind == "metric-at":  # no metric passes its value at zero error
        best = float(from_error(q.metric, 0.0))
        low, high = (low, min(high, best)) if best >= boot.value else (max(low, best), high)
    return Answer(boot.value, low, high), boot.width, 2 * half, design


def _dof(x: np.ndarray, law: LawFit) -> int:
    return max(len(np.unique(x)) - len(law.params), 1)


def _t(dof: int) -> float:
    return float(stats.t.ppf(0.975, dof))


def noise(law: LawFit) -> float:
    """Single-run log noise: between seeds when measured, else the residuals' spread."""
    if np.isfinite(law.noise) and law.noise > 0:
        return float(law.noise)
    return float(np.sqrt(np.average(law.residuals**2, weights=law.weights)) or 1e-3)


def gradients(
    law: LawFit, q: Question, x: np.ndarray, params: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(J, g): d log prediction / d params at each x (len(x), p), and d answer / d params (p,),
    at the fitted parameters or at `params`, by finite differences in the natural parameters.

    Natural, not the form's internal logs of the positive ones: the delta method does not
    depend on the parametrisation except where that degenerates, and a floor E fitted at its
    bound near 0 is exactly there (d/d log E vanishes, so no run would seem to bear on the
    floor, and the answer would seem not to depend on it). A positive parameter within a step
    of 0 gets a forward difference; steps are relative, with the smallest y as the scale of
    the positive ones (terms of y) and 1 of the rest."""
    form = FORMS[law.form]
    natural = np.array(list(law.params.values()) if params is None else params, float)
    scale = np.where(form.log_params, float(np.min(law.y)), 1.0)
    h = 1e-5 * np.maximum(np.abs(natural), scale)
    forward = form.log_params & (natural - h <= 0)
    up = natural + np.diag(h)
    down = natural - np.diag(np.where(forward, 0.0, h))
    span = np.where(forward, h, 2 * h)
    shifted = np.concatenate([up, down])  # (2p, p)
    log_pred = form.log_predict(form.encode(shifted), np.log(np.asarray(x, float)))
    k = len(natural)
    jac = ((log_pred[:k] - log_pred[k:]) / span[:, None]).T
    ans = answers(law, q, shifted)
    return jac, (ans[:k] - ans[k:]) / span


def _covariance(jac: np.ndarray, n: np.ndarray, sigma: float) -> np.ndarray:
    info = (jac * n[:, None]).T @ jac / sigma**2
    return np.linalg.inv(info + RIDGE * np.trace(info) * np.eye(len(info)))


def delta_width(law: LawFit, q: Question, x: np.ndarray, n: np.ndarray) -> float:
    """95% width of the answer by the delta method for a design (sizes x, seeds n at each)."""
    jac, g = gradients(law, q, x)
    return 2 * Z95 * math.sqrt(max(g @ _covariance(jac, n, noise(law)) @ g, 0.0))


def draws(law: LawFit, q: Question, k: int = DRAWS) -> np.ndarray:
    """Parameter sets (rows, natural) the design is judged under: the fit and `k` bootstrap
    refits spread evenly over the answer's bootstrap distribution (those with a finite
    answer). A design judged at the fit alone trusts its curvature: with few
    sizes the fit often puts the floor near zero, and runs that pin down a pure power law look
    like they settle an extrapolation that in truth hinges on the floor."""
    point = np.array([list(law.params.values())])
    if len(law.bootstrap) == 0:
        return point
    ans = answers(law, q, law.bootstrap)
    finite = np.isfinite(ans)
    rows = law.bootstrap[finite][np.argsort(ans[finite])]
    if len(rows) == 0:
        return point
    ranks = np.linspace(0, 1, k) * (len(rows) - 1)
    return np.concatenate([point, rows[np.unique(np.round(ranks).astype(int))]])


def best_shares(log_objective: Callable[[np.ndarray], float], n: int) -> np.ndarray:
    """Shares of n items (summing to 1) that minimise `log_objective(shares)`: softmax logits
    searched by L-BFGS-B from `SPLIT_STARTS` seeded starts, the best kept."""

    def shares(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max())
        return e / e.sum()

    starts = np.random.default_rng(0).normal(0, 1, (SPLIT_STARTS, n))
    fits = [minimize(lambda z: log_objective(shares(z)), z, method="L-BFGS-B") for z in starts]
    return shares(min(fits, key=lambda r: r.fun).x)


class Design:
    """The delta method's variance of the answer for a design, averaged over `draws` of the
    law: the runs fitted so far, then pairs of seeds added one at a time at candidate sizes
    (rank-one updates of each draw's covariance)."""

    def __init__(self, law: LawFit, q: Question, candidates: np.ndarray | None = None):
        sigma = noise(law)
        self.scale = SEEDS_PER_PICK / sigma**2
        n = len(law.x)
        x = law.x if candidates is None else np.concatenate([law.x, candidates])
        covs, gs, jacs = [], [], []
        for params in draws(law, q):
            jac, g = gradients(law, q, x, params)
            if np.all(np.isfinite(jac)) and np.all(np.isfinite(g)):
                covs.append(_covariance(jac[:n], law.weights, sigma))
                gs.append(g)
                jacs.append(jac[n:])
        if not covs:
            raise PlanError(f"the '{law.form}' law's answer has no gradient at any refit")
        self.cov, self.g, self.jac = np.array(covs), np.array(gs), np.array(jacs)

    def variance(self) -> float:
        return max(float(np.mean(np.einsum("kp,kpq,kq->k", self.g, self.cov, self.g))), 0.0)

    def variance_after(self) -> np.ndarray:
        """The variance after a pick at each candidate (c,)."""
        cu = np.einsum("kpq,kcq->kcp", self.cov, self.jac)
        gain = self.scale * np.einsum("kp,kcp->kc", self.g, cu) ** 2
        gain /= 1 + self.scale * np.einsum("kcp,kcp->kc", self.jac, cu)
        return np.maximum(self.variance() - gain.mean(axis=0), 0.0)

    def best_split(self, costs: np.ndarray, budget: float) -> np.ndarray:
        """Pairs at each candidate (fractional) that minimise the variance for `budget`: the
        c-optimal design."""
        info = np.linalg.inv(self.cov)
        outer = self.scale * np.einsum("kcp,kcq->kcpq", self.jac, self.jac)

        def log_variance(share: np.ndarray) -> float:
            total = info + np.einsum("c,kcpq->kpq", share * budget / costs, outer)
            var = np.einsum("kp,kp->k", self.g, np.linalg.solve(total, self.g[..., None])[..., 0])
            return math.log(max(float(var.mean()), 1e-300))

        return best_shares(log_variance, len(costs)) * budget / costs

    def add(self, i: int) -> None:
        """Add a pick at candidate `i`."""
        u = self.jac[:, i]
        cu = np.einsum("kpq,kq->kp", self.cov, u)
        denom = 1 + self.scale * np.einsum("kp,kp->k", u, cu)
        self.cov = self.cov - self.scale * np.einsum("kp,kq->kpq", cu, cu) / denom[:, None, None]


def plan_batch(
    law: LawFit,
    q: Question,
    candidates: list[Candidate],
    budget: Budget,
    *,
    used_seeds: dict[int, set[int]] | None = None,
    tolerance: float = 0.0,
) -> Plan:
    """A batch within `budget`: pairs of new seeds at candidate sizes, each pick the one that
    narrows the expected interval most per unit of cost, first among the pairs of the
    c-optimal split of the budget (`Design.best_split`, rounded down), then among all, until
    nothing affordable is left or the expected width is under `tolerance` (greedy alone
    spends on cheap sizes first, and needed about 1.3x the optimum's compute for the exams to
    reach an AUROC). `used_seeds` maps a subset_size to its seeds.

    Both parts of the interval (`current_answer`) shrink with the delta method's sd; the
    delta method's part also with its t quantile as picks add sizes, down to no less than
    the bootstrap's part. While a size-for interval is unbounded (some refits never reach the
    target), the batch narrows the delta method's part with the whole budget."""
    answer, boot_width, delta_now, design = _interval(law, q, np.array([c.x for c in candidates]))
    var_now, dof_now, sizes = design.variance(), _dof(law.x, law), set(law.x.tolist())
    if math.isfinite(answer.width):
        boot_now, width_now = boot_width, answer.width
    else:
        boot_now, width_now, tolerance = 0.0, delta_now, 0.0
    widest_now = max(boot_now, delta_now)

    def expected(var: float, n_sizes: int) -> float:
        t_ratio = _t(max(n_sizes - len(law.params), 1)) / _t(dof_now)
        shrink = max(boot_now, delta_now * t_ratio) / widest_now
        return width_now * shrink * math.sqrt(var / var_now) if var_now > 0 else 0.0

    costs = np.array([SEEDS_PER_PICK * c.cost for c in candidates])
    quota = np.floor(design.best_split(np.maximum(costs, 1e-12), budget.amount))
    used = {k: set(v) for k, v in (used_seeds or {}).items()}
    picks, left = [], budget.amount
    while (now := expected(design.variance(), len(sizes))) > tolerance:
        after = [
            expected(v, len(sizes | {c.x}))
            for v, c in zip(design.variance_after(), candidates, strict=True)
        ]
        allowed = (costs <= left) & ((quota > 0) if quota.any() else True)
        gains = np.where(allowed, (now - np.array(after)) / np.maximum(costs, 1e-12), 0)
        best = int(np.argmax(gains))
        if gains[best] <= 0 and quota.any():  # the split is done or narrows no more
            quota[:] = 0
            continue
        if gains[best] <= 0:
            break
        quota[best] = max(quota[best] - 1, 0)
        c = candidates[best]
        design.add(best)
        sizes.add(c.x)
        taken = used.setdefault(c.subset_size, set())
        seeds = [s for s in range(len(taken) + SEEDS_PER_PICK) if s not in taken][:SEEDS_PER_PICK]
        taken.update(seeds)
        left -= costs[best]
        width = expected(design.variance(), len(sizes))
        picks.append(Pick(c.subset_size, c.x, tuple(seeds), float(costs[best]), width))
    return Plan(q, budget, answer, boot_width, delta_now, tuple(picks))


def candidate_sizes(low: float, pool: int, existing: list[float], n: int = 12) -> list[int]:
    """Log-spaced sizes from `low` up to below the pool, the existing ones below the pool, and
    0 (the whole pool) last."""
    grid = np.exp(np.linspace(math.log(low), math.log(pool), n))[:-1]
    sizes = {round(float(s)) for s in grid} | {int(s) for s in existing if 0 < s < pool}
    return [*sorted(sizes), 0]


# ---------------------------------------------------------------------------
# Plans for a sweep and the runs of its store

AXIS_KEYS = ("subset_size", "data_seed", "init_seed")


def base_config(sweep: Sweep, runs: list[PlannedRun]) -> RunConfig:
    """The config every planned run shares: the sweep's first run (its axes other than sizes
    and seeds must have one value; a second value would be a different study)."""
    if not runs:
        raise PlanError(f"sweep '{sweep.name}' has no runs")
    if sweep.tune:
        raise PlanError(
            f"sweep '{sweep.name}' tunes {', '.join(sweep.tune)} at each size; plan and "
            "--adaptive do not plan tuned sweeps yet (a planned size would need every tuning "
            "point): plan a copy of the sweep without tune= (its fixed recipe)"
        )
    for axis in sweep.axes:
        for key, values in axis.items():
            if resolve_key(key) not in {resolve_key(k) for k in AXIS_KEYS} and len(values) > 1:
                raise PlanError(
                    f"sweep '{sweep.name}' also varies '{key}'; plan varies subset sizes and "
                    f"seeds only: fix it with --axis {key}=VALUE"
                )
    return runs[0].config


def finished_table(table: pd.DataFrame, cfg: RunConfig) -> pd.DataFrame:
    """Rows of the store's runs that share `cfg` up to subset size and seeds."""
    if table.empty:
        return table
    same = np.ones(len(table), bool)
    for key, value in flatten(cfg).items():
        if key in AXIS_KEYS or key in ("path", "test_path", "fingerprint") or key not in table:
            continue
        value = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        same &= (table[key] == value).to_numpy() | (table[key].isna() & (value is None)).to_numpy()
    if cfg.data.fingerprint and "fingerprint" in table:
        same &= (table["fingerprint"] == cfg.data.fingerprint).to_numpy()
    return table[same]


def plan_study(
    sweep: Sweep,
    runs: list[PlannedRun],
    table: pd.DataFrame,
    question: Question,
    budget: Budget,
    *,
    form: str = "saturating",
    n_bootstrap: int = 200,
    tolerance: float = 0.0,
) -> Plan:
    """The plan for `sweep` given its store's runs (`table` from `results.collect`)."""
    from scaling import cost
    from scaling.laws import fit_metric

    cfg = base_config(sweep, runs)
    table = finished_table(table, cfg)
    fitted = fit_metric(
        table, metric=question.metric, cls=question.cls, split=question.split, form=form,
        n_bootstrap=n_bootstrap,
    )  # fmt: skip
    pool = cost.pool_of(override(cfg, {"subset_size": 0}), table, {})
    planned = [r.config.data.subset_size for r in runs if r.config.data.subset_size]
    if pool.exams is None:
        raise PlanError(f"the pool size of sweep '{sweep.name}' is unknown: {pool.reason}")
    xs = fitted.law.x
    sizes = candidate_sizes(min([*xs, *planned]), pool.exams, list(xs))
    price = run_pricer(sweep, table, budget.unit, pool.exams)
    candidates = [
        Candidate(float(size or pool.exams), size, price(override(cfg, {"subset_size": size})))
        for size in sizes
    ]
    seeds = used_seeds(table, pool.exams)
    try:
        return plan_batch(
            fitted.law, question, candidates, budget, used_seeds=seeds, tolerance=tolerance
        )
    except Unreachable:
        return plan_batch(fitted.law, stand_in(question, pool.exams), candidates, budget,
                          used_seeds=seeds)  # fmt: skip


def stand_in(q: Question, pool: int) -> Question:
    """What to plan for while a size-for target is out of the fitted law's reach: the metric
    at 10× the pool, which pins down the asymptote that decides whether it is reachable."""
    return Question("metric-at", q.metric, q.cls, q.split, at=10.0 * pool)


def run_pricer(
    sweep: Sweep, table: pd.DataFrame, unit: str, pool: int | None
) -> Callable[[RunConfig], float]:
    """The cost of one run in the budget's unit: examples seen (upper bound from its training
    length), or hours of one worker at its throughput (measured, else the reference table)."""
    from scaling import cost

    device, rates = cost.device_kind(sweep.resources), {}

    def price(cfg: RunConfig) -> float:
        examples = cost.training_examples(cfg, pool)
        if unit == "examples":
            return float(examples)
        rate = cost.throughput(cfg, table, device, cache=rates)
        if not rate.examples_per_s > 0:
            raise PlanError(
                f"no throughput to cost a {device} run ({rate.source}): use --budget Nex"
            )
        return examples / rate.examples_per_s / 3600

    return price


def used_seeds(table: pd.DataFrame, pool: int) -> dict[int, set[int]]:
    """Seeds (data and init) of every run in the store per subset_size (0: the whole pool)."""
    out: dict[int, set[int]] = {}
    if table.empty:
        return out
    for row in table.drop_duplicates("run_id").itertuples(index=False):
        size = 0 if int(row.subset_size) in (0, pool) else int(row.subset_size)
        out.setdefault(size, set()).update({int(row.data_seed), int(row.init_seed)})
    return out


def plan_points(plan: Plan) -> list[tuple[int, int]]:
    """(subset_size, seed) of every run of the plan."""
    return [(p.subset_size, seed) for p in plan.picks for seed in p.seeds]


def plan_sweep(sweep: Sweep, runs: list[PlannedRun], points: list[tuple[int, int]]) -> Sweep:
    """`points` (subset_size, seed) as a sweep of the same name: one zipped axis, and fixed the
    base config's fields that differ from its experiment's (data paths absolute), so that its
    runs have the ids the same points of the original sweep would have."""
    from scaling.sweep import load_experiment

    cfg, default = base_config(sweep, runs), load_experiment(sweep.experiment)
    axis = {
        "subset_size": [size for size, _ in points],
        "data_seed": [seed for _, seed in points],
        "init_seed": [seed for _, seed in points],
    }
    ours, theirs = flatten(canonical(cfg)), flatten(canonical(default))
    skip = {*AXIS_KEYS, "name", "fingerprint"}
    fixed = {resolve_key(k): v for k, v in ours.items() if k not in skip and v != theirs.get(k)}
    return replace(sweep, axes=(axis,), fixed=fixed)


def sweep_source(sweep: Sweep, experiment: str, header: str) -> str:
    """Python source of a `sweeps/`-style file whose `get_sweep()` returns `sweep`."""
    return (
        f'"""{header}"""\n\n'
        "from scaling.sweep import Resources, Sweep\n\n\n"
        "def get_sweep() -> Sweep:\n"
        "    return Sweep(\n"
        f"        name={sweep.name!r},\n"
        f"        experiment={experiment!r},\n"
        f"        axes={sweep.axes!r},\n"
        f"        fixed={sweep.fixed!r},\n"
        f"        profiles={sweep.profiles!r},\n"
        f"        profile={sweep.profile!r},\n"
        f"        max_retries={sweep.max_retries!r},\n"
        "    )\n"
    )


def describe(plan: Plan, unit_name: str) -> str:
    """The plan as text: the answer now, each pick with its cost and the expected width after."""
    a, q = plan.answer, plan.question
    cost = (lambda v: f"{v:.3g} h") if plan.budget.unit == "hours" else (lambda v: f"{v:,.0f} ex")
    lines = [
        f"question: {q}",
        f"now: {a.value:.4g}, 95% interval [{a.low:.4g}, {a.high:.4g}], width {a.width:.4g} "
        f"(bootstrap's {plan.bootstrap_width:.4g}, widened to the delta method's "
        f"{plan.delta_width:.4g} with a t quantile where that is wider)",
        f"budget {plan.budget} ({unit_name}): {len(plan.picks)} picks of "
        f"{SEEDS_PER_PICK} seeds cost {cost(plan.cost)}",
        f"  {'subset_size':>11s} {'exams':>10s} {'seeds':>8s} {'cost':>12s} {'width after':>12s}",
    ]
    if not math.isfinite(plan.bootstrap_width):
        lines.insert(2, "unbounded (some refits never reach the target): the plan narrows the "
                        "delta method's interval, the whole budget")  # fmt: skip
    for p in plan.picks:
        seeds = ",".join(map(str, p.seeds))
        lines.append(
            f"  {p.subset_size:>11d} {p.x:>10,.0f} {seeds:>8s} {cost(p.cost):>12s} "
            f"{p.width_after:>12.4g}"
        )
    after = plan.width_after
    lines.append(f"expected 95% interval width: {a.width:.4g} before -> {after:.4g} after")
    return "\n".join(lines)


def write_sweep(
    path: Path, sweep: Sweep, runs: list[PlannedRun], points: list[tuple[int, int]], header: str
) -> Sweep:
    """Write `points` of `sweep` as a sweep file at `path` (atomically); its sweep."""
    from scaling.sweep import find_file

    planned = plan_sweep(sweep, runs, points)
    experiment = str(find_file("experiments", sweep.experiment).resolve())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(sweep_source(planned, experiment, header))
    tmp.replace(path)
    return planned


def write_plan(path: Path, sweep: Sweep, runs: list[PlannedRun], plan: Plan) -> Sweep:
    """Write the plan as a sweep file at `path`; its sweep."""
    header = (
        f"Planned by `scaling plan` for {plan.question}: expected 95% interval width "
        f"{plan.answer.width:.4g} -> {plan.width_after:.4g} for {plan.cost:.4g} "
        f"{plan.budget.unit}."
    )
    return write_sweep(path, sweep, runs, plan_points(plan), header)
