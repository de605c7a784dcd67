"""The store in a bucket: a real S3 API (moto's server) on 127.0.0.1, s3fs as the client.

The session's S3 server gets dummy credentials and its endpoint through the environment
(`AWS_ENDPOINT_URL_S3`), which every `scaling` process and its embedded Ray workers
inherit, so nothing talks to any address but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import fsspec
import pytest
from conftest import TINY, _free_port, race, scaling_bin
from etils import epath

from scaling import store

BUCKET = "scaling-test"

SWEEP = """
from scaling.sweep import Resources, Sweep

def get_sweep():
    return Sweep(
        name="bucket",
        experiment="demo",
        # zipped: three short runs and one long enough to be killed mid-run
        axes=({{"subset_size": [30, 60, 100, 160], "max_steps": [30, 30, 30, 150]}},),
        fixed={fixed!r},
        profiles={{"cpu": Resources(num_cpus=1)}},
        max_retries=2,
    )
"""


@pytest.fixture(scope="session")
def bucket():
    """`s3://scaling-test` on a moto S3 server on 127.0.0.1; the environment points at it."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask the cloud's metadata address
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    fsspec.filesystem("s3").mkdir(BUCKET)
    yield f"s3://{BUCKET}"
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def keys(url: str) -> list[str]:
    fs, root = store.filesystem(url)
    return fs.find(root)


def test_a_run_claim_in_a_bucket_has_exactly_one_winner(bucket):
    run = epath.Path(f"{bucket}/claims/r1")
    assert race(lambda: store._try_create(run / "lock")) == 1
    # A lock whose heartbeat is fresh is held, even by a process on another host ...
    body = {"host": "elsewhere", "pid": 1, "heartbeat": time.time()}
    (run / "lock").write_text(json.dumps(body))
    with pytest.raises(store.LockHeld), store.claim(run):
        pass
    # ... and one whose heartbeat is older than the stale limit is taken over, by one of
    # several contenders (a conditional overwrite of the stale version).
    body["heartbeat"] = time.time() - store.LOCK_STALE_AFTER_S - 1
    (run / "lock").write_text(json.dumps(body))
    assert race(lambda: store._take_over(run / "lock")) == 1
    (run / "lock").write_text(json.dumps(body))
    with store.claim(run):
        assert store.read_json(run / "lock")["pid"] == os.getpid()
    assert not (run / "lock").exists()
    store.write_json_atomic(run / "result.json", {"a": 1})
    store.write_json_atomic(run / "result.json", {"a": 2})  # replaced in place, no temp files
    assert store.read_json(run / "result.json") == {"a": 2}
    assert [k.rsplit("/", 1)[1] for k in keys(f"{bucket}/claims/r1")] == ["result.json"]


def start_steps(run: epath.Path) -> list[int]:
    """The step each training attempt of a run started at."""
    lines = store.read_text(run / "trainings.jsonl").splitlines()
    return [json.loads(x)["start_step"] for x in lines]


def worker_of_long_run(url: str, min_evals: int, deadline: float) -> int:
    """The pid in the lock of a run with `min_evals` evaluations in the bucket."""
    sweep = epath.Path(url)
    while time.monotonic() < deadline:
        for run in sweep.iterdir() if sweep.exists() else []:
            try:
                pid = store.read_json(run / "lock")["pid"]
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            if len(store.read_metrics(run)) >= min_evals:
                return pid
        time.sleep(0.1)
    raise AssertionError(f"no worker of {url} reached {min_evals} evaluations")


@pytest.mark.slow
@pytest.mark.ray
def test_two_launches_into_a_bucket_train_each_run_once_and_a_killed_worker_resumes(
    bucket, tmp_path
):
    """Two `scaling sweep --store s3://...` at once from an empty folder; the worker of the
    long run is killed after a checkpoint, and the run resumes from its bucket checkpoint."""
    synth = scaling_bin("data", "synth", "--out", "data", "--exams", "300", "--patients", "200",
                        "--length", "1024", cwd=tmp_path)  # fmt: skip
    assert synth.returncode == 0, synth.stderr
    fixed = {**TINY, "data.path": "data", "early_stopping": 0}
    (tmp_path / "bucket.py").write_text(SWEEP.format(fixed=fixed))
    url = f"{bucket}/journey"
    launches = [
        scaling_bin("sweep", "bucket.py", "--store", url, cwd=tmp_path, wait=False)
        for _ in range(2)
    ]
    pid = worker_of_long_run(f"{url}/bucket", min_evals=3, deadline=time.monotonic() + 300)
    os.kill(pid, signal.SIGKILL)
    outs = [p.communicate(timeout=600) for p in launches]
    text = "\n".join(out + err for out, err in outs)
    assert [p.returncode for p in launches] == [0, 0], text
    states = store.scan(url, "bucket")
    assert len(states) == 4 and {s.status for s in states} == {"finished"}
    starts = {s.run_id: start_steps(s.path) for s in states}
    resumed = [v for v in starts.values() if len(v) > 1]
    assert resumed and len(resumed[0]) == 2 and resumed[0][0] == 0 and resumed[0][1] >= 10
    assert sorted(len(v) for v in starts.values()) == [1, 1, 1, 2], starts  # each once, + resume
    trained_now = sum(int(o.split(" trained now")[0].rsplit("(", 1)[1]) for o, _ in outs)
    assert trained_now == 4, text
    leftovers = [k for k in keys(url) if k.endswith((".tmp", "/lock"))]
    assert leftovers == []
    assert "4/4 done" in scaling_bin("status", url, cwd=tmp_path).stdout
    done = scaling_bin("results", url, "--format", "csv", "--out", "results.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "subset_size" in Path(tmp_path / "results.csv").read_text()


@pytest.mark.slow
def test_results_fit_and_report_read_a_store_in_a_bucket(bucket, small_store, tmp_path):
    """The session's finished store, copied into the bucket, reads back as the same table."""
    url = f"{bucket}/analysis"
    fs, root = store.filesystem(url)
    fs.put(str(small_store / "small"), f"{root}/small", recursive=True)
    tables = []
    for where, name in ((str(small_store), "disk.csv"), (url, "bucket.csv")):
        done = scaling_bin("results", where, "--out", name, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        tables.append((tmp_path / name).read_text())
    assert tables[0] == tables[1] and tables[0].count("\n") > 8 * 4
    quick = ["--metric", "loss", "--form", "power", "--bootstrap", "20"]
    fit = scaling_bin("fit", url, *quick, cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    assert "power" in fit.stdout
    report = scaling_bin("report", url, "--out", "rep", *quick[2:], cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "8 runs" in (tmp_path / "rep" / "report.md").read_text()
    assert list((tmp_path / "rep").glob("*.png"))
