"""Adaptive sweeps: rounds of plan -> run -> refit until the rounds are done, the budget is
spent or the question's interval is narrower than the tolerance.

Each round is a sweep file written into the store (`<store>/<sweep>/adaptive/round-K.py`)
before any of its runs starts; its runs are ordinary runs of the sweep (content-addressed,
seen by `status`, `results` and `report`). `adaptive/state.json` lists the rounds: their
runs, planned cost, the answer before, the width expected and the answer after. A relaunch
first completes a round that was interrupted (its finished runs are not trained again),
then plans the next. With no law to plan from yet, the first round is the sweep's 4 smallest
sizes at seeds 0 and 1 (enough for a 3-parameter law with a degree of freedom to spare).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from etils import epath

from scaling import store
from scaling.config import override
from scaling.laws import LawError
from scaling.plan import (
    Answer,
    Budget,
    PlanError,
    Question,
    base_config,
    current_answer,
    finished_table,
    plan_points,
    plan_study,
    run_pricer,
    write_sweep,
)
from scaling.sweep import PlannedRun, Sweep, expand, load_sweep

STARTER_SIZES = 4
RunRound = Callable[[list[PlannedRun]], bool]
"""Runs a round's runs on Ray; True when all of them finished."""


class RoundFailed(RuntimeError):
    """Some runs of a round failed or diverged; a relaunch retries the round."""


def state_path(store_path: str, sweep: str) -> epath.Path:
    """The state file of a sweep's adaptive rounds, beside its runs (a folder with no config)."""
    return store.run_path(store_path, sweep, "adaptive") / "state.json"


def load_state(store_path: str, sweep: str) -> dict[str, Any]:
    path = state_path(store_path, sweep)
    return store.read_json(path) if path.exists() else {"rounds": []}


def _save(store_path: str, sweep: str, state: dict[str, Any]) -> None:
    path = state_path(store_path, sweep)
    path.parent.mkdir(parents=True, exist_ok=True)
    store.write_json_atomic(path, state)


def answer_now(
    sweep: Sweep, runs: list[PlannedRun], table: pd.DataFrame, q: Question, form: str, boot: int
) -> Answer:
    """The question's answer and 95% interval from the finished runs of `table`."""
    from scaling.laws import fit_metric

    rows = finished_table(table, base_config(sweep, runs))
    fitted = fit_metric(
        rows, metric=q.metric, cls=q.cls, split=q.split, form=form, n_bootstrap=boot
    )
    return current_answer(fitted.law, q)


def run_adaptive(
    sweep: Sweep,
    runs: list[PlannedRun],
    store_path: str,
    question: Question,
    budget: Budget,
    run_round: RunRound,
    *,
    rounds: int,
    tolerance: float = 0.0,
    form: str = "saturating",
    n_bootstrap: int = 200,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Up to `rounds` rounds in all (those already in the store count) within `budget` in all
    (planned cost); returns the state. A round whose runs do not all finish raises RoundFailed."""
    from scaling import results

    if rounds < 1 or tolerance < 0:
        raise PlanError(f"--rounds must be >= 1 and --tolerance >= 0, got {rounds}, {tolerance}")
    state = load_state(store_path, sweep.name)
    key = {"question": str(question), "form": form, "unit": budget.unit}
    if state["rounds"] and state.get("key") != key:
        raise PlanError(
            f"the store holds adaptive rounds of sweep '{sweep.name}' for {state.get('key')}, "
            f"not {key}"
        )
    state["key"] = key

    def execute(record: dict[str, Any]) -> None:
        if not run_round(expand(load_sweep(record["file"]), cwd=Path.cwd())):
            raise RoundFailed(f"round {record['index']} has unfinished runs; launch again to retry")
        table = results.collect(store_path, sweep.name)
        try:
            answer = answer_now(sweep, runs, table, question, form, n_bootstrap)
            record["after"] = dataclasses.asdict(answer)
        except (
            LawError,
            PlanError,
        ) as e:  # a curve that does not fall (yet), a target out of reach
            record["after"], record["why"] = None, str(e)
        done = table[table["run_id"].isin(record["run_ids"])].drop_duplicates("run_id")
        record["wall_time_s"] = float(done["wall_time_s"].sum())
        record["done"] = True
        _save(store_path, sweep.name, state)
        log(round_line(record, budget))

    for record in state["rounds"]:
        if not record.get("done"):
            log(f"round {record['index']}: resuming {record['file']}")
            execute(record)
    while len(state["rounds"]) < rounds:
        spent = sum(r["cost"] for r in state["rounds"])
        left, index = budget.amount - spent, len(state["rounds"]) + 1
        if left <= 0:
            log(f"budget spent: {spent:.4g} of {budget}")
            break
        per_round = Budget(left / (rounds - len(state["rounds"])), budget.unit)
        table = results.collect(store_path, sweep.name)
        record = {"index": index, "before": None, "expected": None}
        try:
            plan = plan_study(
                sweep, runs, table, question, per_round, form=form, n_bootstrap=n_bootstrap,
                tolerance=tolerance,
            )  # fmt: skip
        except LawError as e:
            if state["rounds"]:
                raise
            sizes = sorted({r.config.data.subset_size for r in runs} - {0})[:STARTER_SIZES]
            points = [(size, seed) for size in sizes for seed in (0, 1)]
            price = run_pricer(sweep, table, budget.unit, None)
            cfg = base_config(sweep, runs)
            record["cost"] = sum(price(override(cfg, {"subset_size": size})) for size, _ in points)
            if record["cost"] > left:
                raise PlanError(
                    f"no law yet ({e}), and the sweep's sizes at 2 seeds cost "
                    f"{record['cost']:.4g}, more than the budget {budget}"
                ) from e
            header = f"Round {index} of adaptive sweep '{sweep.name}': no law yet ({e})."
            log(f"round {index}: no law yet ({e}); the sweep's smallest sizes at seeds 0, 1")
        else:
            if plan.question == question and plan.answer.width <= tolerance:
                log(f"interval width {plan.answer.width:.4g} is within tolerance {tolerance:g}")
                break
            if not plan.picks:
                log("no run fits the budget left or narrows the interval")
                break
            points = plan_points(plan)
            record |= {
                "cost": plan.cost,
                "before": dataclasses.asdict(plan.answer),
                "expected": plan.width_after,
            }
            header = (
                f"Round {index} of adaptive sweep '{sweep.name}' for {question}: expected 95% "
                f"interval width {plan.answer.width:.4g} -> {plan.width_after:.4g}."
            )
        path = state_path(store_path, sweep.name).parent / f"round-{index}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_sweep(path, sweep, runs, points, header)
        record |= {
            "file": str(path),
            "run_ids": [r.run_id for r in expand(load_sweep(str(path)), cwd=Path.cwd())],
        }
        state["rounds"].append(record)
        _save(store_path, sweep.name, state)
        log(f"round {index}: {len(points)} runs, planned cost {record['cost']:.4g} {budget.unit}")
        execute(record)
    return state


def round_line(record: dict[str, Any], budget: Budget) -> str:
    """One round as a line: its answer after, the interval and its width, the cost."""
    expected = f" (expected {record['expected']:.4g})" if record.get("expected") else ""
    if a := record["after"]:
        answer = (
            f"answer {a['value']:.4g} [{a['low']:.4g}, {a['high']:.4g}], "
            f"width {a['high'] - a['low']:.4g}{expected}"
        )
    else:
        answer = f"no answer ({record['why']})"
    return (
        f"round {record['index']}: {answer}; planned cost {record['cost']:.4g} {budget.unit}, "
        f"measured {record['wall_time_s']:.0f} worker-s"
    )


def states(store_path: str, sweep: str | None = None) -> dict[str, dict[str, Any]]:
    """The adaptive state of every sweep in the store that has one (or of `sweep`)."""
    root = epath.Path(store_path)
    names = [sweep] if sweep else sorted(p.name for p in root.iterdir() if p.is_dir())
    found = {name: load_state(store_path, name) for name in names}
    return {name: state for name, state in found.items() if state["rounds"]}


def rounds_table(state: dict[str, Any]) -> pd.DataFrame:
    """One row per round: its runs, planned and cumulative cost, measured worker time, the
    answer after it with its 95% interval and width, and the width the plan expected."""
    rows, total = [], 0.0
    for r in state["rounds"]:
        total += r["cost"]
        after = r.get("after") or dict.fromkeys(("value", "low", "high"), math.nan)
        rows.append(
            {
                "round": r["index"],
                "runs": len(r["run_ids"]),
                "planned cost": r["cost"],
                "cumulative cost": total,
                "measured worker-s": r.get("wall_time_s", math.nan),
                "answer": after["value"],
                "95% low": after["low"],
                "95% high": after["high"],
                "width": after["high"] - after["low"],
                "expected width": r.get("expected") or math.nan,
            }
        )
    return pd.DataFrame(rows)
