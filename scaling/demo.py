"""`scaling demo`: the whole job on synthetic data, end to end, on an embedded Ray.

synthetic CODE-layout data -> sweeps/demo.py on local Ray -> results table ->
saturating power laws with bootstrap CIs -> scaling-curve figure -> report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

DEMO_SWEEP = "demo"
REPORT_BOOTSTRAP = 200  # per law of the report; the two headline laws use 1,000


def ensure_data(path: Path, *, exams: int, patients: int, seed: int = 0) -> bool:
    """Write the synthetic dataset unless the same one is already there; True if written."""
    from scaling.data.synthetic import write_code_dataset

    params = {"exams": exams, "patients": patients, "seed": seed}
    stamp = path / "synth.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return False
    write_code_dataset(path, n_exams=exams, n_patients=patients, seed=seed)
    stamp.write_text(json.dumps(params))
    return True


def run_demo(
    out: Path,
    *,
    exams: int,
    patients: int,
    axis: dict[str, list[str]],
    overrides: dict[str, Any],
    num_cpus: int | None = None,
    compile_cache: str | None = None,
    trackers: Any = None,
) -> int:
    from scaling import laws, plots, report, results
    from scaling.orchestrate import run_sweep
    from scaling.sweep import expand, load_sweep, replace_axes

    started = time.monotonic()
    data = (out / "data").resolve()
    sweep = replace_axes(load_sweep(DEMO_SWEEP), axis)
    expand(sweep, overrides)  # bad input fails here, before any work
    if ensure_data(data, exams=exams, patients=patients):
        print(
            f"wrote {exams} synthetic exams of {patients} patients to {data} "
            f"in {time.monotonic() - started:.1f}s"
        )
    runs = expand(sweep, {"data.path": str(data), **overrides})
    store_path = str(out / "store")
    print(f"sweep {sweep.name}: {len(runs)} runs into {store_path}")
    summary = run_sweep(
        sweep,
        runs,
        store_path,
        num_cpus=num_cpus,
        compile_cache=compile_cache,
        trackers=trackers,
    )
    retried = f", {len(summary.retried)} retried" if summary.retried else ""
    print(
        f"runs: {len(summary.finished)} finished ({len(summary.trained)} trained now{retried}), "
        f"{len(summary.failed)} failed, {len(summary.diverged)} diverged"
    )
    for rid, msg in summary.failed.items():
        print(f"  FAILED {rid}: {msg}")

    table = results.collect(store_path, sweep.name)
    results.write(table, out / "results.parquet", "parquet")
    results.write(table, out / "results.csv", "csv")
    fits = []
    for metric, cls in (("auroc", "macro"), ("loss", "all")):
        fit = laws.fit_metric(table, metric=metric, cls=cls, split="test", form="saturating")
        fits.append(fit)
        print(laws.describe(fit))
    figures = plots.plot_scaling(fits, out / "scaling_curve")
    paths = report.write_report(table, out / "report", n_bootstrap=REPORT_BOOTSTRAP)
    print(
        "wrote " + ", ".join(str(p) for p in [out / "results.parquet", *figures, *paths.values()])
    )
    print(f"demo finished in {time.monotonic() - started:.1f}s")
    return 0 if summary.ok else 1
