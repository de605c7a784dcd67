"""Successive halving of tuning points: stop the clearly losing ones early, on validation.

Within each group of a tuned sweep (runs that differ only in the tuned fields: one subset
size, seed and setting of the other axes) every tuning point trains to a first rung, a
fraction of its training. The best 1/η of them on the selection metric go on to the next
rung, the others are pruned; the last one trains to the end and is the group's selected
run. With n points there are ceil(log_η n) rungs, at fractions η^-k of the training
(Jamieson & Talwalkar 2016, Li et al. 2017). A point's score at a rung is its best
validation value so far (what its best checkpoint would give); a point that finished
before the rung (early stopping) competes with its final best.

Rungs are synchronous: every run of a rung pauses (checkpointed) before any is pruned.
All state is in the store: paused runs resume from their checkpoints, a pruned run has
`store.PRUNED` in its failure.json with the step it reached, so a relaunched sweep repeats
no work. A pruned run is an ordinary unfinished run: the same sweep without `halving`
trains it to the end. This module plans and decides; `run_stage` runs (on Ray).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from scaling import store
from scaling.sweep import PlannedRun, Sweep
from scaling.tuning import RECORDED, group_key, parse_select, points


class StageSummary(Protocol):
    """What `run_stage` reports (as `scaling.orchestrate.SweepSummary`)."""

    ok: bool
    paused: dict[str, tuple[int, int]]


@dataclass(frozen=True)
class Rung:
    fraction: float  # of each run's training, rounded up to its next evaluation
    keep: int  # tuning points of a group that go on


def rungs(n_points: int, eta: int) -> list[Rung]:
    """The rungs for groups of `n_points` keeping 1/`eta` (rounded up) at each."""
    alive = [n_points]
    while alive[-1] > 1:
        alive.append(math.ceil(alive[-1] / eta))
    count = len(alive) - 1
    return [Rung(eta ** -(count - i), alive[i + 1]) for i in range(count)]


def grid_share(n_points: int, eta: int) -> float:
    """The share of the full tuning grid's training that halving does at most (rungs land
    on the next evaluation, so a little more in practice)."""
    done, before, alive = 0.0, 0.0, n_points
    for rung in rungs(n_points, eta):
        done += alive * (rung.fraction - before)
        before, alive = rung.fraction, rung.keep
    return (done + alive * (1.0 - before)) / n_points


def run_halving(
    sweep: Sweep,
    runs: list[PlannedRun],
    store_path: str,
    run_stage: Callable[[list[PlannedRun], float | None], StageSummary],
) -> bool:
    """Train `runs` (a tuned sweep's) rung by rung, pruning each group's losers; then the
    survivors to the end. False as soon as a stage has failed runs (relaunch to go on)."""
    keys = list(points(sweep.tune)[0])
    groups: dict[str, list[PlannedRun]] = {}
    for run in runs:
        groups.setdefault(group_key(run.config, keys), []).append(run)
    n_points = max(len(members) for members in groups.values())
    for rung in rungs(n_points, sweep.halving):
        alive = {g: _alive(store_path, sweep.name, members) for g, members in groups.items()}
        deciding = [members for members in alive.values() if len(members) > rung.keep]
        if not deciding:  # decided by an earlier launch
            continue
        summary = run_stage([run for members in deciding for run in members], rung.fraction)
        if not summary.ok:
            return False
        for members in deciding:
            _prune(sweep, store_path, members, rung.keep, summary.paused)
    return run_stage(_alive(store_path, sweep.name, runs), None).ok


def _alive(store_path: str, sweep: str, runs: list[PlannedRun]) -> list[PlannedRun]:
    ended = (store.PRUNED, store.DIVERGED)
    return [r for r in runs if _status(store_path, sweep, r) not in ended]


def _status(store_path: str, sweep: str, run: PlannedRun) -> str:
    return store.run_status(store.run_path(store_path, sweep, run.run_id))


def _prune(
    sweep: Sweep,
    store_path: str,
    members: list[PlannedRun],
    keep: int,
    paused: dict[str, tuple[int, int]],
) -> None:
    """Mark all but the `keep` best of one group's runs pruned, with their score and step."""
    sel = parse_select(sweep.select)
    ranked = []
    for order, run in enumerate(members):
        path = store.run_path(store_path, sweep.name, run.run_id)
        step = paused.get(run.run_id, (None, None))[0]
        status = store.run_status(path)
        value = _score(store.read_metrics(path), RECORDED[sel.metric], step, sel.higher_is_better)
        ranked.append((value if status != store.DIVERGED else math.inf, order, run, path))
    ranked.sort(key=lambda item: item[:2])
    metric = RECORDED[sel.metric]
    for place, (value, _, run, path) in enumerate(ranked[keep:], start=keep + 1):
        if run.run_id not in paused:  # finished or diverged meanwhile: nothing to stop
            continue
        step, total = paused[run.run_id]
        shown = -value if sel.higher_is_better else value
        store.write_failure(
            path,
            store.PRUNED,
            f"pruned by successive halving at step {step} of {total}: {metric} {shown:.4g}, "
            f"{_ordinal(place)} of {len(ranked)} (the best {keep} go on)",
            step=step,
            total_steps=total,
            batch_size=run.config.train.batch_size,
        )


def _score(
    records: list[dict[str, Any]], key: str, step: int | None, higher_is_better: bool
) -> float:
    """The best value of `key` up to `step` (all records if None), as a loss; inf if none."""
    values = [float(r[key]) for r in records if (step is None or r["step"] <= step) and key in r]
    values = [-v if higher_is_better else v for v in values if math.isfinite(v)]
    return min(values, default=math.inf)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def savings(store_path: str, sweep: str, run_ids: Iterable[str]) -> tuple[int, int, int]:
    """(runs pruned, training examples pruning spared them, examples these runs trained)."""
    pruned = spared = trained = 0
    for run_id in run_ids:
        path = store.run_path(store_path, sweep, run_id)
        status = store.run_status(path)
        if status == store.FINISHED:
            trained += int(store.read_json(path / "result.json")["train_examples_seen"])
        elif status == store.PRUNED:
            info = store.read_json(path / "failure.json")
            pruned += 1
            trained += info["step"] * info["batch_size"]
            spared += (info["total_steps"] - info["step"]) * info["batch_size"]
    return pruned, spared, trained
