"""The run store: atomic results, claims, stale-lock recovery, status."""

import json
import multiprocessing
import os
import time

import pytest
from conftest import race
from etils import epath

from scaling import store
from scaling.config import RunConfig


@pytest.fixture
def run(tmp_path):
    path = epath.Path(tmp_path) / "sweep" / "r1"
    store.init_run(path, RunConfig())
    return path


def test_new_run_is_pending_with_its_config(run):
    assert store.run_status(run) == store.PENDING
    assert store.load_config(run) == RunConfig()


def test_result_is_atomic_and_marks_finished(run):
    store.write_failure(run, store.FAILED, "boom")
    assert store.run_status(run) == store.FAILED
    store.write_result(run, {"status": "finished", "x": 1})
    assert store.run_status(run) == store.FINISHED
    assert not (run / "failure.json").exists()
    assert not [p for p in os.listdir(run) if p.endswith(".tmp")]


def test_claim_excludes_a_second_claimant_and_releases(run):
    with store.claim(run):
        assert store.run_status(run) == store.RUNNING
        with pytest.raises(store.LockHeld), store.claim(run):
            pass
    assert not (run / "lock").exists()
    assert store.run_status(run) == store.PENDING


def _hold(path: str) -> None:
    with store.claim(epath.Path(path)):
        time.sleep(60)


def test_lock_of_a_killed_process_is_recovered(run):
    proc = multiprocessing.get_context("spawn").Process(target=_hold, args=(os.fspath(run),))
    proc.start()
    deadline = time.time() + 30
    while not (run / "lock").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert store.run_status(run) == store.RUNNING
    proc.kill()
    proc.join()
    assert store.run_status(run) == store.PENDING  # dead holder: stale
    with store.claim(run):
        assert json.loads((run / "lock").read_text())["pid"] == os.getpid()


def test_a_stale_lock_is_taken_over_by_exactly_one_of_many_contenders(run):
    body = {"host": "elsewhere", "pid": 1, "heartbeat": time.time() - store.LOCK_STALE_AFTER_S - 1}
    for _ in range(20):  # each round: 8 threads judge the same stale lock at once
        (run / "lock").write_text(json.dumps(body))
        assert race(lambda: store._take_over(run / "lock")) == 1
        assert store.read_json(run / "lock")["pid"] == os.getpid()
        assert not (run / "lock.takeover").exists()


def test_metrics_log_ignores_a_torn_last_line(run):
    store.append_metrics(run, {"step": 1})
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 2, "val')
    assert store.read_metrics(run) == [{"step": 1}]


def test_scan_finds_runs(run, tmp_path):
    states = store.scan(tmp_path)
    assert [(s.sweep, s.run_id, s.status) for s in states] == [("sweep", "r1", store.PENDING)]


def test_a_second_failure_replaces_the_first_and_leaves_no_temporary_file(run):
    store.write_failure(run, store.FAILED, "first")
    store.write_failure(run, store.DIVERGED, "second", step=7)
    failure = store.read_json(run / "failure.json")
    assert (failure["status"], failure["message"], failure["step"]) == ("diverged", "second", 7)
    assert store.run_status(run) == store.DIVERGED
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []


def test_relative_paths_become_absolute_and_urls_stay(tmp_path):
    assert store.absolute("store", tmp_path) == str(tmp_path / "store")
    assert store.absolute("../x/./y", tmp_path / "a") == str(tmp_path / "x" / "y")
    assert store.absolute("s3://bucket/prefix", tmp_path) == "s3://bucket/prefix"
    root = store.absolute("st", tmp_path)
    assert store.store_root(store.run_path(root, "sweep", "abc")) == epath.Path(root)
