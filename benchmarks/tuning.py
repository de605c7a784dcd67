"""Successive halving against the full tuning grid: the compute it saves, the winners it keeps.

A tuned sweep of the demo experiment (shrunk as in the tests) on synthetic CODE-layout data
is run twice through the `scaling` command in one temporary store: first with
`halving=--eta` (the losing tuning points of every (size, seed) group are pruned at the
rungs), then the same sweep without halving, which trains the pruned runs on from their
checkpoints to the end, so that the store then holds the full grid. Printed per group: the
winner on validation under halving and under the full grid. Last, one JSON line:

- `compute_ratio`: training examples of the halving sweep over those of the full grid
  (target: at most `grid_share`, halving's planned share, plus a rung's rounding to the next
  evaluation); `saved` is one minus it.
- `same_winner_share`: the share of groups whose halving winner is the full grid's winner.
- `seconds_halving`, `seconds_rest`: wall time of the two launches (Ray start-up included).

    python benchmarks/tuning.py [--sizes 100,200,400] [--seeds 2] [--eta 2] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LRS = [3e-4, 1e-3, 3e-3, 1e-2]
SWEEP = """
from scaling.sweep import Resources, Sweep

def get_sweep():
    return Sweep(
        name="tuned",
        experiment="demo",
        axes=({{"subset_size": {sizes}}}, {{"data_seed": {seeds}, "init_seed": {seeds}}}),
        fixed={fixed},
        tune={{"train.lr": {lrs}}},
        halving={eta},
        profiles={{"cpu": Resources(num_cpus=1)}},
    )
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,200,400", help="subset sizes, comma-separated")
    p.add_argument("--seeds", type=int, default=2, help="seeds per size")
    p.add_argument("--eta", type=int, default=2, help="keep 1/eta of the points per rung")
    p.add_argument("--steps", type=int, default=40, help="training steps of every run")
    return p.parse_args()


def launch(folder: Path, **fields: object) -> float:
    """Write the sweep file with `fields` and run it; its wall time."""
    (folder / "tuned.py").write_text(SWEEP.format(**fields))
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "scaling.cli", "sweep", "tuned.py", "--store", "store"],
        cwd=folder,
        check=True,
        stdout=sys.stderr,
    )
    return time.monotonic() - started


def winners(store_path: Path) -> dict[str, str]:
    """The selected run of every tuning group, keyed by the group."""
    from scaling import store, tuning

    states = store.scan(store_path, "tuned")
    marks = tuning.mark(states, store_path)
    keys = list(tuning.read_record(store_path, "tuned")["keys"])
    return {
        tuning.group_key(store.load_config(s.path), keys): s.run_id
        for s in states
        if marks[s.run_id]["selected"]
    }


def trained(store_path: Path) -> int:
    """Training examples the store's runs have seen so far (pruned ones: to their rung)."""
    from scaling import store
    from scaling.halving import savings

    return savings(str(store_path), "tuned", [s.run_id for s in store.scan(store_path, "tuned")])[2]


def main() -> None:
    args = parse_args()
    from benchmarks.orchestrate import SHAPE
    from scaling.data.synthetic import write_code_dataset
    from scaling.halving import grid_share

    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as tmp:
        folder = Path(tmp)
        data = write_code_dataset(
            folder / "data", n_exams=2 * max(sizes), n_patients=max(sizes), length=1024, seed=0
        )
        fixed = {
            **SHAPE,
            "data.path": os.fspath(data),
            "max_steps": args.steps,
            "eval_every": max(1, args.steps // 8),
            "early_stopping": 0,
            "bootstrap": 0,
        }
        spec = dict(sizes=sizes, seeds=list(range(args.seeds)), fixed=repr(fixed), lrs=LRS)
        seconds_halving = launch(folder, **spec, eta=args.eta)
        halved = winners(folder / "store")
        examples_halving = trained(folder / "store")
        seconds_rest = launch(folder, **spec, eta=0)
        grid = winners(folder / "store")
        examples_grid = trained(folder / "store")
    same = [halved[group] == grid[group] for group in grid]
    for group, winner in grid.items():
        where = {k: v for k, v in json.loads(group).items() if k in ("subset_size", "data_seed")}
        print(f"{where}: halving kept {halved[group]}, full grid picks {winner}", file=sys.stderr)
    ratio = examples_halving / examples_grid
    print(
        json.dumps(
            {
                "benchmark": "tuning",
                "groups": len(grid),
                "points": len(LRS),
                "eta": args.eta,
                "grid_share": round(grid_share(len(LRS), args.eta), 4),
                "compute_ratio": round(ratio, 4),
                "saved": round(1 - ratio, 4),
                "same_winner_share": round(sum(same) / len(same), 4),
                "seconds_halving": round(seconds_halving, 1),
                "seconds_rest": round(seconds_rest, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
