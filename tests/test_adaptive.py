"""`scaling sweep --adaptive`: rounds of plan -> run on Ray -> refit, each an ordinary sweep
in the store; killed between rounds, a relaunch finishes the round it was in without
training its finished runs again."""

from __future__ import annotations

import json
import time

import pytest
from conftest import TINY, scaling_bin
from test_plan import SIZES, SWEEP, plant_store

from scaling import store
from scaling.sweep import expand, load_sweep

# Near the error of the tiny net after 30 steps (AUROC about 0.4), so its real runs fit in.
LAW = {"E": 0.55, "A": 3.0, "alpha": 0.8}
ARGS = ("sweep", "study.py", "--adaptive", "--question", "metric-at:1000", "--budget", "2000ex",
        "--rounds", "2", "--bootstrap", "100")  # fmt: skip


def read_state(cwd) -> dict:
    path = cwd / "store" / "study" / "adaptive" / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"rounds": []}


@pytest.mark.slow
@pytest.mark.ray
def test_killed_adaptive_sweep_resumes_without_rerunning_finished_rounds(
    ray_head, code_data, tmp_path
):
    at = ("--address", ray_head[0])  # each round a sweep on the suite's head
    plant_store(tmp_path / "store", code_data, law=LAW)
    (tmp_path / "study.py").write_text(
        SWEEP.format(sizes=list(SIZES), fixed={**TINY, "data.path": str(code_data)})
    )
    planted = {s.run_id for s in store.scan(tmp_path / "store", "study")}
    proc = scaling_bin(*ARGS, *at, cwd=tmp_path, wait=False)
    deadline = time.monotonic() + 300
    while len(read_state(tmp_path)["rounds"]) < 2:  # round 2 is recorded before it runs
        assert time.monotonic() < deadline and proc.poll() is None, "round 2 was never planned"
        time.sleep(0.02)
    proc.kill()  # killed in round 2, its runs not finished
    out, err = proc.communicate(timeout=120)
    first, second = read_state(tmp_path)["rounds"]
    assert first.get("done") and first["after"] and not second.get("done"), out + err
    assert first["cost"] <= 1000 and len(first["run_ids"]) == 2  # half the budget: one pick

    again = scaling_bin(*ARGS, *at, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "round 2: resuming" in again.stdout and "round 1:" not in again.stdout
    rounds = read_state(tmp_path)["rounds"]
    assert len(rounds) == 2 and all(r["done"] and r["after"] for r in rounds)
    assert sum(r["cost"] for r in rounds) <= 2000
    states = {s.run_id: s for s in store.scan(tmp_path / "store", "study")}
    ours = [rid for r in rounds for rid in r["run_ids"]]
    assert len(set(ours)) == len(ours) and not set(ours) & planted  # new runs only
    assert all(states[rid].status == store.FINISHED for rid in ours)
    assert all(store.count_trainings(states[rid].path) == 1 for rid in first["run_ids"])
    # each round is a normal sweep file of exactly its runs, and shows in status and results
    for r in rounds:
        assert [p.run_id for p in expand(load_sweep(r["file"]))] == r["run_ids"]
    status = scaling_bin("status", "store", cwd=tmp_path)
    assert f"{len(planted) + len(ours)}/{len(planted) + len(ours)} done" in status.stdout
    # the report has the answer and interval after each round, and the compute spent
    rep = scaling_bin("report", "store", "--out", "rep", "--bootstrap", "20", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    section = (tmp_path / "rep" / "report.md").read_text().split("## Adaptive rounds")[1]
    assert "Sweep study: auroc macro on test at 1,000 exams (saturating law)" in section
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(lines) == 3 and "cumulative cost" in lines[0]  # header and one row per round
    assert lines[1].startswith("| 1 | 2 |") and lines[2].startswith("| 2 | 2 |")  # 2 runs each
    # a third launch has nothing left to do: the rounds are done
    done = scaling_bin(*ARGS, *at, cwd=tmp_path)
    assert done.returncode == 0 and "adaptive sweep study: 2 rounds" in done.stdout
    assert "round" not in done.stdout.replace("2 rounds", "").replace("rounds in", "")


def test_adaptive_needs_a_budget_and_a_known_question(tmp_path):
    (tmp_path / "study.py").write_text(SWEEP.format(sizes=[20, 40], fixed={**TINY}))
    out = scaling_bin("sweep", "study.py", "--adaptive", cwd=tmp_path)
    assert out.returncode == 2 and "--adaptive needs --budget" in out.stderr
    out = scaling_bin("sweep", "study.py", "--adaptive", "--budget", "1h", "--question", "why",
                      cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2 and "unknown question 'why'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.ray
def test_adaptive_sweep_from_an_empty_store_starts_with_the_sweeps_sizes(
    ray_head, code_data, tmp_path
):
    """No law to plan from: round 1 is the sweep's smallest sizes at seeds 0 and 1, real runs."""
    (tmp_path / "study.py").write_text(
        SWEEP.format(sizes=[20, 40], fixed={**TINY, "data.path": str(code_data)})
    )
    out = scaling_bin("sweep", "study.py", "--adaptive", "--budget", "1e5ex", "--rounds", "1",
                      "--address", ray_head[0], cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "round 1: no law yet" in out.stdout
    [first] = read_state(tmp_path)["rounds"]
    assert first["done"] and first["cost"] == 4 * 30 * 16  # 4 runs of 30 steps of 16
    runs = expand(load_sweep(first["file"]))
    points = {(r.config.data.subset_size, r.config.data.data_seed) for r in runs}
    assert points == {(20, 0), (20, 1), (40, 0), (40, 1)}
    states = {s.run_id: s.status for s in store.scan(tmp_path / "store", "study")}
    assert states == dict.fromkeys(first["run_ids"], store.FINISHED)
