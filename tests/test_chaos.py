"""The chaos harness at a small size: a seeded storm of faults leaves every result as an
undisturbed sweep's (benchmarks/chaos.py; its own Ray head on 127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
@pytest.mark.ray
def test_a_seeded_storm_of_every_kind_of_fault_loses_and_changes_nothing(tmp_path):
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "chaos.py"), "--faults", "8", "--runs", "4",
         "--every", "2", "--seed", "1", "--work", str(tmp_path)],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    *faults, totals = lines
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert totals["faults"] == len(faults) == 8
    assert set(totals["by_kind"]) == {"worker", "driver", "checkpoint", "stale_lock"}
    assert totals["lost"] == totals["mismatched"] == totals["retrained_from_zero"] == 0
    assert totals["leftovers"] == [] and totals["stray_processes"] == 0
    assert totals["summary_matches_store"]
    damaged = [f for f in faults if f["fault"] == "checkpoint"]
    assert all(f["phase"].startswith("damaged step") for f in damaged)
