"""Sweeps on a real Ray head on 127.0.0.1: results, resume, faults, concurrency, job submission."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from conftest import REPO, TINY, scaling_bin, scaling_cmd, write_sweep
from etils import epath

from scaling import results, store

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def sweep_command(sweep, store_path, address, *extra):
    """The `scaling sweep` command line of a sweep file, for a process the test controls."""
    return [
        sys.executable,
        "-m",
        "scaling.cli",
        "sweep",
        str(sweep),
        "--store",
        str(store_path),
        "--address",
        address,
        *extra,
    ]


def start_sweep(sweep, store_path, address, *extra) -> subprocess.Popen:
    """`scaling sweep` in a process the test controls, its output captured as text."""
    return subprocess.Popen(
        sweep_command(sweep, store_path, address, *extra),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def trainings(store_path, sweep):
    return {s.run_id: store.count_trainings(s.path) for s in store.scan(store_path, sweep)}


def test_sweep_finishes_resumes_nothing_and_tabulates(ray_head, code_data, tmp_path):
    address, _ = ray_head
    sweep = write_sweep(tmp_path, "basic", [40, 80, 160], code_data)
    st = tmp_path / "store"
    first = scaling_cmd("sweep", str(sweep), "--store", str(st), "--address", address)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3/3 finished (3 trained now)" in first.stdout
    table = results.collect(st)
    assert table["run_id"].nunique() == 3 and (table["status"] == "finished").all()
    rows = table[(table.split == "test") & (table["class"] == "macro") & (table.metric == "auroc")]
    assert sorted(rows["subset_size"]) == [40, 80, 160]
    assert (rows["train_exams"] >= rows["subset_size"]).all()
    again = scaling_cmd("sweep", str(sweep), "--store", str(st), "--address", address)
    assert again.returncode == 0 and "all 3 runs already finished" in again.stderr
    assert set(trainings(st, "basic").values()) == {1}
    status = scaling_cmd("status", str(st))
    assert "3/3 done" in status.stdout


def test_a_failing_run_is_recorded_and_the_others_finish(ray_head, code_data, tmp_path):
    address, _ = ray_head
    sweep = tmp_path / "faulty.py"
    sweep.write_text(
        textwrap.dedent(f"""
        from scaling.sweep import Sweep
        def get_sweep():
            return Sweep(name="faulty", experiment="demo",
                         axes=({{"subset_size": [40, 80], "fail_at_step": [-1, 3]}},),
                         fixed={ {**TINY, "data.path": str(code_data)}!r})
    """)
    )
    st = tmp_path / "store"
    out = scaling_cmd("sweep", str(sweep), "--store", str(st), "--address", address)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 failed" in out.stdout and "InjectedFailure" in out.stdout
    by_status = {s.status: s for s in store.scan(st)}
    assert set(by_status) == {"finished", "failed"}
    failure = json.loads((by_status["failed"].path / "failure.json").read_text())
    assert "Traceback" in failure["traceback"] and "fail_at_step" in failure["traceback"]


def test_killed_worker_is_retried_and_resumes(ray_head, code_data, tmp_path):
    address, _ = ray_head
    sweep = write_sweep(
        tmp_path, "crash", [120], code_data, max_steps=200, eval_every=10, early_stopping=0
    )
    st = tmp_path / "store"
    proc = start_sweep(sweep, st, address)
    killed = _kill_worker_after_checkpoint(st / "crash", deadline=time.monotonic() + 240)
    out, _ = proc.communicate(timeout=600)
    assert killed, "no worker was seen mid-run"
    assert proc.returncode == 0, out
    [run] = store.scan(st, "crash")
    assert run.status == "finished"
    starts = [
        json.loads(x)["start_step"] for x in (run.path / "trainings.jsonl").read_text().splitlines()
    ]
    assert len(starts) == 2 and starts[0] == 0 and starts[1] > 0


def _kill_worker_after_checkpoint(sweep_dir, deadline) -> bool:
    while time.monotonic() < deadline:
        for lock in sweep_dir.glob("*/lock"):
            if len(store.read_metrics(epath.Path(lock.parent))) >= 2:
                try:
                    pid = json.loads(lock.read_text())["pid"]
                except (json.JSONDecodeError, FileNotFoundError):
                    continue
                os.kill(pid, signal.SIGKILL)
                return True
        time.sleep(0.05)
    return False


def test_killed_driver_then_relaunch_completes_without_retraining(ray_head, code_data, tmp_path):
    address, _ = ray_head
    sweep = write_sweep(tmp_path, "driver", [40, 60, 80, 100, 120, 140], code_data)
    st = tmp_path / "store"
    args = sweep_command(sweep, st, address, "--max-concurrent", "1")
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((st / "driver").glob("*/result.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    finished_before = {p.parent.name for p in (st / "driver").glob("*/result.json")}
    assert 0 < len(finished_before) < 6
    again = scaling_cmd("sweep", str(sweep), "--store", str(st), "--address", address)
    assert again.returncode == 0, again.stdout + again.stderr
    counts = trainings(st, "driver")
    assert len(counts) == 6 and all(s.status == "finished" for s in store.scan(st, "driver"))
    assert all(counts[rid] == 1 for rid in finished_before)


def test_two_concurrent_invocations_train_each_run_once(ray_head, code_data, tmp_path):
    address, _ = ray_head
    sweep = write_sweep(tmp_path, "twice", [40, 70, 100], code_data, cpus=0.5, max_steps=200)
    st = tmp_path / "store"
    first = start_sweep(sweep, st, address)
    paused: set[int] = set()

    def pause_each_worker_mid_run() -> bool:
        for lock in (st / "twice").glob("*/lock"):
            try:
                pid = json.loads(lock.read_text())["pid"]
            except (json.JSONDecodeError, FileNotFoundError):
                continue
            if pid not in paused and store.read_metrics(epath.Path(lock.parent)):
                os.kill(pid, signal.SIGSTOP)  # holds its run's lock, cannot finish
                paused.add(pid)
        return len(paused) == 3

    try:
        wait_until(pause_each_worker_mid_run, "the first driver's three runs never all started")
        second = start_sweep(sweep, st, address)
        # The second driver's task runs while every run is claimed: it must wait on a lock.
        wait_until(lambda: len(task_processes()) >= 4, "the second driver's task never started")
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
    outs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert trainings(st, "twice") == dict.fromkeys(trainings(st, "twice"), 1)
    assert len(trainings(st, "twice")) == 3
    assert "3/3 finished (3 trained now)" in outs[0], outs[0]
    assert re.search(r"3/3 finished \(0 trained now, [123] finished by another process", outs[1])


def task_processes() -> list[psutil.Process]:
    """Ray workers running a sweep's training task on this machine."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if (p.info["cmdline"] or [""])[0].startswith("ray::_run_task"):
            found.append(p)
    return found


def wait_until(condition, message: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def worker_pid(sweep_dir, min_evals: int) -> int:
    """The pid of a live worker training a run of `sweep_dir` with `min_evals` evaluations."""
    found: list[int] = []

    def seen() -> bool:
        for lock in sweep_dir.glob("*/lock"):
            try:
                pid = json.loads(lock.read_text())["pid"]
            except (json.JSONDecodeError, FileNotFoundError):
                continue
            if len(store.read_metrics(epath.Path(lock.parent))) >= min_evals:
                found.append(pid)
                return psutil.pid_exists(pid)
        return False

    wait_until(seen, f"no worker of {sweep_dir} reached {min_evals} evaluations")
    return found[-1]


def test_resources_the_cluster_cannot_provide_fail_before_anything_starts(
    ray_head, code_data, tmp_path
):
    address, _ = ray_head
    sweep = write_sweep(tmp_path, "greedy", [40], code_data, gpus=4)
    st = tmp_path / "store"
    out = scaling_cmd("sweep", str(sweep), "--store", str(st), "--address", address)
    assert out.returncode == 2
    assert "no node of the cluster can provide" in out.stderr and "GPU" in out.stderr
    assert not list(st.glob("**/trainings.jsonl"))


def test_submit_to_a_cluster_as_a_job_from_a_folder_with_relative_paths(
    ray_head, code_data, tmp_path
):
    from ray.job_submission import JobSubmissionClient

    _, dashboard = ray_head
    shutil.copytree(code_data, tmp_path / "data")
    write_sweep(tmp_path, "job", [40, 80], code_data)
    out = scaling_bin("submit", "job.py", "--store", "store", "--set", "data.path=data",
                      "--address", dashboard, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = out.stdout.split("submitted job ")[1].split()[0]
    client = JobSubmissionClient(dashboard)
    deadline = time.monotonic() + 400
    while not (status := str(client.get_job_status(job_id))).endswith(
        ("SUCCEEDED", "FAILED", "STOPPED")
    ):
        assert time.monotonic() < deadline, status
        time.sleep(1)
    assert status.endswith("SUCCEEDED"), client.get_job_logs(job_id)
    runs = store.scan(tmp_path / "store", "job")  # the job ran elsewhere, wrote here
    assert len(runs) == 2 and {s.status for s in runs} == {"finished"}
    assert {store.load_config(s.path).data.path for s in runs} == {str(tmp_path / "data")}


def test_ctrl_c_cancels_runs_in_flight_and_the_store_stays_consistent(
    ray_head, code_data, tmp_path
):
    address, _ = ray_head
    # Long runs (1,000 steps): interrupted at their first evaluation, ~950 steps are left.
    sweep = write_sweep(tmp_path, "interrupt", [80, 120], code_data, max_steps=1000,
                        eval_every=50, early_stopping=0)  # fmt: skip
    st = tmp_path / "store"
    proc = start_sweep(sweep, st, address)
    pid = worker_pid(st / "interrupt", min_evals=1)  # verifiably mid-run
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "interrupted: cancelled 2 runs in flight" in out
    wait_until(lambda: not _alive(pid), f"the cancelled worker {pid} is still running", 60)
    assert not list(st.glob("interrupt/*/result.json"))  # nothing partial reads as a result
    again = scaling_cmd("sweep", str(sweep), "--store", str(st), "--address", address)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {s.status for s in store.scan(st, "interrupt")} == {"finished"}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
