"""Per-size tuning: the tuning points of a sweep and the choice of the winner on validation.

A sweep with `tune={"train.lr": [...], ...}` trains every tuning point (a grid, or a seeded
random sample of it) at every other point of its axes; each is an ordinary run. The sweep
records its tuning keys, points and selection metric in `<store>/<sweep>/tuning.json`, and
the results table marks, within each group of runs that differ only in the tuned fields
(same subset size, seeds, other axes), the finished run that is best on the *validation*
metric as `selected`. Test data never takes part in the choice.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from etils import epath

from scaling import store
from scaling.config import ConfigError, RunConfig, flatten, get_value, resolve_key
from scaling.errors import ScalingError

METRICS = ("auroc", "auprc", "f1", "recall", "specificity", "precision", "npv")
"""Validation metrics a sweep may select on (as `scaling.metrics.METRICS`, without its imports)."""

RECORD = "tuning.json"


class TuningError(ScalingError):
    """A tuning spec is malformed; the message names the key or value that is wrong."""


@dataclass(frozen=True)
class Selection:
    """What decides the winner: a validation metric of one class, and its direction."""

    metric: str  # "loss" or one of scaling.metrics.METRICS
    cls: str  # "all" for the loss, else "macro"
    higher_is_better: bool


def parse_select(select: str) -> Selection:
    """`val_loss` (lower is better) or `val_<metric>` such as `val_auroc` (higher is better)."""
    split, _, metric = select.partition("_")
    if split == "test":
        raise TuningError(f"select='{select}': tuning chooses on validation data, never on test")
    if split != "val" or metric not in ("loss", *METRICS):
        raise TuningError(
            f"select='{select}' is not a validation metric; use val_loss or "
            + ", ".join(f"val_{m}" for m in METRICS)
        )
    if metric == "loss":
        return Selection("loss", "all", higher_is_better=False)
    return Selection(metric, "macro", higher_is_better=True)


RECORDED = {"loss": "val_loss", "auroc": "val_macro_auroc"}
"""The selection metrics recorded at every evaluation (metrics.jsonl), by their key there."""


def check_halving(halving: int, sel: Selection) -> None:
    """Successive halving keeps 1/`halving` of the points per rung (0: off); a rung is
    decided on a metric recorded at every evaluation."""
    if halving == 0:
        return
    if not isinstance(halving, int) or isinstance(halving, bool) or halving < 2:
        raise TuningError(f"halving={halving!r}: use 0 (off) or an integer >= 2")
    if sel.metric not in RECORDED:
        raise TuningError(
            f"halving decides on a metric recorded at every evaluation: select val_loss or "
            f"val_auroc, not val_{sel.metric}"
        )


def points(tune: dict[str, list[Any]], samples: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    """The tuning grid in order (first key slowest), or `samples` of its points drawn
    without replacement with `seed` (kept in grid order). Keys become dotted paths."""
    resolved: dict[str, list[Any]] = {}
    for key, values in tune.items():
        try:
            path = resolve_key(key)
        except ConfigError as e:
            raise TuningError(f"tune key '{key}': {e}") from e
        if not isinstance(values, (list, tuple)) or not values:
            raise TuningError(f"tune key '{key}' needs a non-empty list of values")
        if path in resolved:
            raise TuningError(f"tune key '{key}' is given twice")
        resolved[path] = list(values)
    grid = [
        dict(zip(resolved, combo, strict=True)) for combo in itertools.product(*resolved.values())
    ]
    if not samples:
        return grid
    if not 0 < samples <= len(grid):
        raise TuningError(f"tune_samples={samples}: the tuning grid has {len(grid)} points")
    keep = sorted(random.Random(seed).sample(range(len(grid)), samples))
    return [grid[i] for i in keep]


def record_path(store_path: str | os.PathLike, sweep: str) -> epath.Path:
    return epath.Path(store_path) / sweep / RECORD


def write_record(
    store_path: str | os.PathLike,
    sweep: str,
    keys: list[str],
    configs: list[RunConfig],
    select: str,
) -> None:
    """Record the tuning keys, the points (values as the configs hold them) and `select`."""
    seen: list[list[Any]] = []
    for cfg in configs:
        values = [get_value(cfg, k) for k in keys]
        if values not in seen:
            seen.append(values)
    path = record_path(store_path, sweep)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = (read_record(store_path, sweep) or {}).get("interpolated", {})
    record = {"keys": keys, "points": seen, "select": select, "interpolated": kept}
    store.write_json_atomic(path, record)


def add_interpolated(
    store_path: str | os.PathLike, sweep: str, runs: dict[str, dict[int | str, Any]]
) -> None:
    """Add runs whose tuned values were interpolated (run id -> {"subset_size", values})."""
    record = read_record(store_path, sweep) or {}
    record["interpolated"] = {**record.get("interpolated", {}), **runs}
    store.write_json_atomic(record_path(store_path, sweep), record)


def winners_by_size(
    store_path: str | os.PathLike, sweep: str, sizes: list[int]
) -> dict[int, dict[str, Any]]:
    """The tuned values that won at each of `sizes`, over seeds: the median of numbers,
    else the most common value (ties: the first tuning point). Fails if a size has none."""
    record = read_record(store_path, sweep)
    states = store.scan(store_path, sweep)
    marks = mark(states, store_path)
    found: dict[int, list[list[Any]]] = {size: [] for size in sizes}
    for s in states:
        if marks[s.run_id]["selected"] and marks[s.run_id]["tuning_point"] >= 0:
            cfg = store.load_config(s.path)
            if cfg.data.subset_size in found:
                found[cfg.data.subset_size].append([get_value(cfg, k) for k in record["keys"]])
    out = {}
    for size, rows in found.items():
        if not rows:
            raise TuningError(f"no finished tuning run at subset_size {size} to interpolate from")
        out[size] = {}
        for i, key in enumerate(record["keys"]):
            values = [row[i] for row in rows]
            if all(_is_number(v) for v in values):
                out[size][key] = type(values[0])(np.median(values))
            else:
                out[size][key] = max(values, key=values.count)
    return out


def interpolate(winners: dict[int, dict[str, Any]], sizes: list[int]) -> dict[int, dict[str, Any]]:
    """Tuned values at `sizes` from the winners at the tuned sizes, in log-size: numbers
    linearly (in log value when all are positive), clamped beyond the tuned sizes; other
    values from the nearest tuned size. Size 0 (the whole pool) takes the largest's."""
    tuned = sorted(winners)
    logs = np.log(tuned)
    out: dict[int, dict[str, Any]] = {}
    for size in sizes:
        at = math.log(size) if size else math.inf
        out[size] = {}
        for key in winners[tuned[0]]:
            values = [winners[t][key] for t in tuned]
            if all(_is_number(v) for v in values):
                positive = all(v > 0 for v in values)
                ys = np.log(values) if positive else np.asarray(values, dtype=float)
                y = float(np.interp(min(at, logs[-1]), logs, ys))
                y = math.exp(y) if positive else y
                out[size][key] = round(y) if isinstance(values[0], int) else float(f"{y:.4g}")
            else:
                nearest = int(np.argmin(np.abs(logs - min(at, logs[-1]))))
                out[size][key] = values[nearest]
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_record(store_path: str | os.PathLike, sweep: str) -> dict[str, Any] | None:
    path = record_path(store_path, sweep)
    return store.read_json(path) if path.exists() else None


def _score(result: dict[str, Any], sel: Selection) -> float:
    if sel.metric == "loss":
        value = result.get("loss", {}).get("val")
    else:
        value = result.get("metrics", {}).get("val", {}).get(sel.cls, {}).get(sel.metric)
    return math.nan if value is None else float(value)


def mark(states: list[store.RunState], store_path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Per run id: `selected`, `tuning_point` (index into the sweep's points; -1 untuned or
    not a recorded point), `tuning` (its values as text) and `select` (the sweep's metric).
    Runs of an untuned sweep are all selected; in a tuned sweep the winner of each group
    of finished runs is."""
    out: dict[str, dict[str, Any]] = {}
    by_sweep: dict[str, list[store.RunState]] = {}
    for s in states:
        by_sweep.setdefault(s.sweep, []).append(s)
    for sweep, runs in by_sweep.items():
        record = read_record(store_path, sweep)
        if record is None:
            out.update(
                {
                    s.run_id: {"selected": True, "tuning_point": -1, "tuning": "", "select": ""}
                    for s in runs
                }
            )
            continue
        keys, sel = record["keys"], parse_select(record["select"])
        interpolated = record.get("interpolated", {})
        where = {json.dumps(p): i for i, p in enumerate(record["points"])}
        groups: dict[str, list[tuple[float, str]]] = {}
        for s in runs:
            cfg = store.load_config(s.path)
            values = [get_value(cfg, k) for k in keys]
            index = where.get(json.dumps(values), -1)
            label = " ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, values, strict=True))
            out[s.run_id] = {
                "selected": s.run_id in interpolated and s.status == store.FINISHED,
                "tuning_point": index,
                "tuning": label + (" (interpolated)" if s.run_id in interpolated else ""),
                "select": record["select"],
            }
            if index < 0 or s.status != store.FINISHED:
                continue
            score = _score(store.read_json(s.path / "result.json"), sel)
            if math.isnan(score):
                continue
            groups.setdefault(group_key(cfg, keys), []).append(
                (-score if sel.higher_is_better else score, s.run_id)
            )
        for candidates in groups.values():
            out[min(candidates)[1]]["selected"] = True
    return out


def group_key(cfg: RunConfig, keys: list[str]) -> str:
    """A run's tuning group as text: every config field but the tuned `keys`."""
    rest = {k: v for k, v in flatten(cfg).items() if k not in _leaves(keys)}
    return json.dumps(rest, sort_keys=True, default=str)


def _leaves(keys: list[str]) -> set[str]:
    """The results-table column names of dotted config paths."""
    cfg = RunConfig()
    names = set(flatten(cfg))
    return {k if k in names else k.split(".")[-1] for k in keys}
