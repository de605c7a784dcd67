"""Cost of training through the Ray orchestrator, against references measured in the same run.

Each figure is one JSON line on stdout; every run is the demo experiment shrunk to test size
(100 Hz x 256 samples, batch 16) on synthetic CODE-layout data, in temporary stores:

- `startup`: one run of one training step through `run_sweep` with an empty compilation cache
  (`cold`) and then, in a fresh embedded cluster, a run of the same shape with that cache
  (`warm`). `first_step_s` is the run's time from its start to its first metrics record (data,
  model, first training step and first validation); `wall_time_s` is the whole run;
  target: warm `first_step_s` at most a quarter of cold.
- `overhead`: `--runs` one-step runs called in-process with `train_and_evaluate` (after one
  uncounted warm-up run) against the same number through `run_sweep` on a 1-CPU embedded
  cluster. `ray_steady_s_per_run` is the spacing of the runs' completions after the first
  (cluster start-up, worker start and its first run excluded, reported as `ray_fixed_s`);
  target: `overhead_s_per_run` (steady minus in-process) under 1 s.
- `utilisation`: `--parallel-runs` equal runs on 2 workers (a 2-CPU embedded cluster, 1 CPU
  per run), each of as many steps as one run alone trains in about `--run-seconds` (timed
  in-process first): the `run_sweep` call's wall time over the sum of the runs' own
  `wall_time_s` divided by 2. `fixed_s` is the part of the call outside the runs' span
  (cluster start-up and shutdown, worker start); `span_ratio` counts only from the first
  run's start to the last run's end; target: `ratio` at most 1.15.

    python benchmarks/orchestrate.py [--runs 40] [--parallel-runs 8] [--run-seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPE = {
    "sample_rate": 100.0,
    "length": 256,
    "val_fraction": 0.2,
    "test_fraction": 0.2,
    "train.batch_size": 16,
    "eval.batch_size": 64,
}
"""The demo experiment shrunk as in the tests (tests/conftest.py TINY): one compiled shape."""

ONE_STEP = {"max_steps": 1, "eval_every": 1, "bootstrap": 0}
LONG = {"eval_every": 100, "bootstrap": 50, "early_stopping": 0}  # utilisation runs: all steps
PROBE_STEPS = 200


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=40, help="one-step runs for the overhead figure")
    p.add_argument("--parallel-runs", type=int, default=8, help="runs for the utilisation figure")
    p.add_argument("--run-seconds", type=float, default=20.0, help="duration of each of those runs")
    return p.parse_args()


def emit(figure: str, **values: object) -> None:
    print(json.dumps({"figure": figure, **values}), flush=True)


def make_sweep(name: str, data: Path, seeds: range, **fixed: object):
    """A sweep of equal runs of one shape that differ only in `init_seed`."""
    from scaling.sweep import Resources, Sweep

    return Sweep(
        name=name,
        experiment="demo",
        axes=({"init_seed": list(seeds)},),
        fixed={**SHAPE, "data.path": str(data), **fixed},
        profiles={"cpu": Resources(num_cpus=1)},
    )


def sweep_results(store: Path, name: str) -> list[dict]:
    """Each finished run's result, with `end` (result.json's mtime) and first metrics time."""
    out = []
    for path in sorted((store / name).glob("*/result.json")):
        result = json.loads(path.read_text())
        first = json.loads((path.parent / "metrics.jsonl").read_text().splitlines()[0])
        out.append({**result, "end": path.stat().st_mtime, "first_step_s": first["time"]})
    return out


def timed_sweep(sweep, store: Path, cache: Path, num_cpus: int) -> tuple[float, list[dict]]:
    """Wall seconds of `run_sweep` on a fresh embedded cluster, and the runs' results."""
    from scaling.orchestrate import run_sweep
    from scaling.sweep import expand

    runs = expand(sweep)
    started = time.perf_counter()
    summary = run_sweep(
        sweep,
        runs,
        str(store),
        num_cpus=num_cpus,
        compile_cache=str(cache),
        report_every=3600,
    )
    wall = time.perf_counter() - started
    if not summary.ok or len(summary.trained) != len(runs):
        raise RuntimeError(f"sweep {sweep.name} did not train every run: {summary}")
    return wall, sweep_results(store, sweep.name)


def startup(data: Path, store: Path, cache: Path) -> None:
    cold_wall, [cold] = timed_sweep(
        make_sweep("cold", data, range(1), **ONE_STEP), store, cache, num_cpus=1
    )
    warm_wall, [warm] = timed_sweep(
        make_sweep("warm", data, range(1, 2), **ONE_STEP), store, cache, num_cpus=1
    )
    emit(
        "startup",
        cold_first_step_s=round(cold["first_step_s"], 2),
        warm_first_step_s=round(warm["first_step_s"], 2),
        ratio=round(warm["first_step_s"] / cold["first_step_s"], 3),
        cold_wall_time_s=round(cold["wall_time_s"], 2),
        warm_wall_time_s=round(warm["wall_time_s"], 2),
        wall_ratio=round(warm["wall_time_s"] / cold["wall_time_s"], 3),
        cold_sweep_s=round(cold_wall, 2),
        warm_sweep_s=round(warm_wall, 2),
        target_ratio=0.25,
        met=warm["first_step_s"] <= 0.25 * cold["first_step_s"],
    )


def overhead(data: Path, store: Path, cache: Path, n: int) -> None:
    from scaling.sweep import expand
    from scaling.train import train_and_evaluate

    local = make_sweep("inprocess", data, range(100, 101 + n), **ONE_STEP)
    warmup, *counted = expand(local)
    train_and_evaluate(warmup.config, store / local.name / warmup.run_id)
    started = time.perf_counter()
    for run in counted:
        train_and_evaluate(run.config, store / local.name / run.run_id)
    local_s = (time.perf_counter() - started) / n

    wall, results = timed_sweep(
        make_sweep("ray", data, range(200, 200 + n), **ONE_STEP), store, cache, num_cpus=1
    )
    ends = sorted(r["end"] for r in results)
    steady = (ends[-1] - ends[0]) / (n - 1)
    emit(
        "overhead",
        runs=n,
        inprocess_s_per_run=round(local_s, 3),
        ray_s_per_run=round(wall / n, 3),
        ray_steady_s_per_run=round(steady, 3),
        ray_fixed_s=round(wall - n * steady, 2),
        overhead_s_per_run=round(steady - local_s, 3),
        ratio=round(steady / local_s, 3),
        target_overhead_s=1.0,
        met=steady - local_s < 1.0,
    )


def steps_lasting(seconds: float, data: Path, store: Path) -> int:
    """Training steps of a run that lasts about `seconds` alone on this machine.

    From two in-process probes of PROBE_STEPS and twice as many steps: their difference is
    the marginal cost of a step (evaluations included), the shorter one the fixed cost.
    """
    from scaling.sweep import expand
    from scaling.train import train_and_evaluate

    walls = []
    for i, steps in enumerate((PROBE_STEPS, 2 * PROBE_STEPS)):
        probe = make_sweep(f"probe{i}", data, range(1), max_steps=steps, **LONG)
        [run] = expand(probe)
        walls.append(train_and_evaluate(run.config, store / probe.name / run.run_id)["wall_time_s"])
    per_step = max(walls[1] - walls[0], 1e-3) / PROBE_STEPS
    return max(PROBE_STEPS, PROBE_STEPS + round((seconds - walls[0]) / per_step))


def utilisation(data: Path, store: Path, cache: Path, n: int, seconds: float) -> None:
    steps = steps_lasting(seconds, data, store)
    sweep = make_sweep("parallel", data, range(300, 300 + n), max_steps=steps, **LONG)
    wall, results = timed_sweep(sweep, store, cache, num_cpus=2)
    ideal = sum(r["wall_time_s"] for r in results) / 2
    span = max(r["end"] for r in results) - min(r["end"] - r["wall_time_s"] for r in results)
    emit(
        "utilisation",
        runs=n,
        workers=2,
        steps=steps,
        sweep_s=round(wall, 2),
        ideal_s=round(ideal, 2),
        mean_run_s=round(2 * ideal / n, 2),
        fixed_s=round(wall - span, 2),
        ratio=round(wall / ideal, 3),
        span_ratio=round(span / ideal, 3),
        target_ratio=1.15,
        met=wall <= 1.15 * ideal,
    )


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-orchestrate-") as tmp:
        root = Path(tmp)
        cache = root / "jax_cache"
        # The in-process reference shares the workers' cache; set before JAX is imported.
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(cache)
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        from scaling.data.synthetic import write_code_dataset

        data = root / "data"
        write_code_dataset(data, n_exams=400, n_patients=250, length=1024, seed=0)
        store = root / "store"
        startup(data, store, cache)  # also fills the cache for the figures below
        overhead(data, store, cache, args.runs)
        utilisation(data, store, cache, args.parallel_runs, args.run_seconds)


if __name__ == "__main__":
    main()
