"""The tidy results table: one row per run × split × class × metric.

Each row carries the run's flattened config (`subset_size`, seeds, model shape, ...)
and its measurements (parameters, FLOPs, examples seen, wall time, device). A finished
run on the whole pool (`subset_size` 0) is listed at the pool's size. This table is the
only input of the law fitter, the plots and the report.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd

from scaling import store, tuning
from scaling.config import flatten

MEASUREMENTS = (
    "train_exams",
    "pool_exams",
    "pool_patients",
    "n_params",
    "flops_per_example",
    "train_examples_seen",
    "steps",
    "epochs",
    "best_step",
    "wall_time_s",
    "train_time_s",
    "examples_per_s",
    "device_kind",
    "device_count",
)
ROW_COLUMNS = ("split", "class", "metric", "value", "ci_low", "ci_high", "n_pos")


def _run_columns(state: store.RunState) -> dict[str, Any]:
    cfg = store.load_config(state.path)
    cols = {
        "run_id": state.run_id,
        "sweep": state.sweep,
        "status": state.status,
        "experiment": cfg.name,
    }
    for key, value in flatten(cfg).items():
        cols[key] = ",".join(map(str, value)) if isinstance(value, list) else value
    return cols


def _metric_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for split, table in result.get("metrics", {}).items():
        n_pos = result.get("n_pos", {}).get(split, {})
        for cls, values in table.items():
            for key, value in values.items():
                if key.endswith(("_low", "_high")):
                    continue
                rows.append(
                    {
                        "split": split,
                        "class": cls,
                        "metric": key,
                        "value": _num(value),
                        "ci_low": _num(values.get(f"{key}_low")),
                        "ci_high": _num(values.get(f"{key}_high")),
                        "n_pos": _num(n_pos.get(cls)),
                    }
                )
    for split, loss in result.get("loss", {}).items():
        rows.append(
            {
                "split": split,
                "class": "all",
                "metric": "loss",
                "value": _num(loss),
                "ci_low": math.nan,
                "ci_high": math.nan,
                "n_pos": math.nan,
            }
        )
    return rows


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def collect(store_path: str | os.PathLike, sweep: str | None = None) -> pd.DataFrame:
    """Tidy table of every run in the store; unfinished runs get one row with NaN metrics.

    `selected` marks the runs laws use by default: every run of an untuned sweep, and the
    winner on validation of each group of tuning points (`scaling.tuning`)."""
    records = []
    states = store.scan(store_path, sweep)
    marks = tuning.mark(states, store_path)
    for state in states:
        cols = {**_run_columns(state), **marks[state.run_id]}
        if state.status == store.FINISHED:
            result = store.read_json(state.path / "result.json")
            cols.update({k: result.get(k) for k in MEASUREMENTS})
            if cols.get("subset_size") == 0:  # the whole pool: its size, so laws can use it
                cols["subset_size"] = result["train_exams"]
            records.extend({**cols, **row} for row in _metric_rows(result))
        else:
            records.append({**cols, **dict.fromkeys(ROW_COLUMNS, math.nan)})
    if not records:
        return pd.DataFrame(columns=["run_id", "sweep", "status", "selected", *ROW_COLUMNS])
    table = pd.DataFrame.from_records(records)
    lead = ["run_id", "sweep", "status", "selected", "experiment", *ROW_COLUMNS]
    return table[lead + [c for c in table.columns if c not in lead]]


def selected(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the selected runs (a table without the column is kept whole)."""
    if "selected" not in table.columns:
        return table
    return table[table["selected"].fillna(False).astype(bool)]


def write(table: pd.DataFrame, out: str | os.PathLike, fmt: str) -> None:
    """Write the table as parquet, csv or markdown."""
    if fmt == "parquet":
        table.to_parquet(out, index=False)
    elif fmt == "csv":
        table.to_csv(out, index=False)
    elif fmt == "markdown":
        with open(out, "w") as f:
            f.write(to_markdown(table))
    else:
        raise ValueError(f"unknown format {fmt!r}: use parquet, csv or markdown")


def to_markdown(table: pd.DataFrame) -> str:
    """A pipe table without the optional `tabulate` dependency."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return str(v)
