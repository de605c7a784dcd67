"""Where a sweep's run time goes: the phases each run recorded in its `result.json`.

One JSON line per run (`{"figure": "run", "run_id": ..., "wall_s": ..., <phase>: seconds}`),
then one for the whole store with each phase's share of the runs' summed wall time
(`{"figure": "breakdown", "runs": N, "wall_s": ..., "share": {<phase>: fraction}}`).
Phases: `setup` (data, model, compiled steps), `first_step` (tracing and compiling or reading
the cache), `train` (the other steps), `validate`, `checkpoint`, `evaluate` (test and
validation predictions, thresholds, bootstrap CIs), `store` and `other`.

    scaling demo && python benchmarks/breakdown.py demo_out/store
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    from scaling import store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="a store folder, e.g. demo_out/store")
    args = parser.parse_args()
    totals: dict[str, float] = {}
    wall = 0.0
    runs = [s for s in store.scan(args.store) if s.status == store.FINISHED]
    for run in runs:
        result = store.read_json(run.path / "result.json")
        phases = result.get("seconds", {})
        wall += result["wall_time_s"]
        for name, seconds in phases.items():
            totals[name] = totals.get(name, 0.0) + seconds
        line = {"figure": "run", "run_id": run.run_id, "wall_s": round(result["wall_time_s"], 3)}
        print(json.dumps(line | phases))
    if not runs:
        sys.exit(f"error: no finished runs in {args.store}")
    share = {name: round(s / wall, 3) for name, s in sorted(totals.items(), key=lambda x: -x[1])}
    print(json.dumps({"figure": "breakdown", "runs": len(runs), "wall_s": round(wall, 2),
                      "share": share}))  # fmt: skip


if __name__ == "__main__":
    main()
