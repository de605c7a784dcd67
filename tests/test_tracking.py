"""Experiment trackers, for real and offline: TensorBoard event files, W&B offline runs and
an MLflow SQLite store, each read back with its own package and compared with the store."""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, scaling_bin, scaling_cmd, write_sweep

from scaling import store

WANDB = Path(sys.executable).parent / "wandb"


@pytest.fixture
def offline_trackers(tmp_path, monkeypatch):
    """W&B offline with its caches in tmp; MLflow at its default (no tracking URI set)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("CACHE", "CONFIG", "DATA"):
        monkeypatch.setenv(f"WANDB_{name}_DIR", str(tmp_path / f"wandb_{name.lower()}"))
    for name in ("WANDB_DIR", "WANDB_PROJECT", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)


def finite(record: dict) -> dict[str, float]:
    return {
        k: v
        for k, v in record.items()
        if k != "step" and isinstance(v, int | float) and math.isfinite(v)
    }


def wandb_records(run_dir: Path) -> list[dict]:
    """The records of an offline W&B run, read by the wandb package's own reader."""
    out = subprocess.run(
        [str(WANDB), "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def tensorboard_state(store_path: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in store_path.glob("*/*/tensorboard/events.*")}


def mlflow_runs(db: Path, sweep: str) -> tuple:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name(sweep)
    return client, client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.mark.ray
@pytest.mark.slow
def test_a_sweep_reports_every_metric_to_three_trackers_once(
    ray_head, code_data, tmp_path, offline_trackers
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    address, _ = ray_head
    work = tmp_path / "work"
    work.mkdir()
    write_sweep(work, "trk", [40, 80, 160], os.path.relpath(code_data, work))
    trackers = ["--tracker", "tensorboard", "--tracker", "wandb", "--tracker", "mlflow"]
    command = ["sweep", "trk.py", "--store", "store", "--address", address]
    first = scaling_bin(*command, *trackers, cwd=work)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3/3 finished (3 trained now)" in first.stdout
    assert "warning" not in first.stderr.lower()

    st = work / "store"
    runs = {s.run_id: s.path for s in store.scan(st, "trk")}
    assert len(runs) == 3
    client, ml_runs = mlflow_runs(st / "mlflow.db", "trk")  # experiment named after the sweep
    ml_by_id = {r.info.run_name: r for r in ml_runs}
    wandb_dirs = sorted((st / "wandb").glob("offline-run-*"))
    wb_by_id = {}
    for run_dir in wandb_dirs:
        records = wandb_records(run_dir)
        (run,) = [r["run"] for r in records if r["type"] == "run"]
        assert run["run_group"] == "trk" and run["project"] == "scaling"
        summary = {}
        for r in records:
            if r["type"] == "summary":
                summary.update(r["summary"]["update"])
        history = [r["history"]["item"] for r in records if r["type"] == "history"]
        wb_by_id[run["display_name"]] = (run["config"]["update"], history, summary)
    assert set(ml_by_id) == set(wb_by_id) == set(runs)

    for rid, path in runs.items():
        metrics = store.read_metrics(path)
        result = store.read_json(path / "result.json")
        config = store.read_json(path / "config.json")["config"]
        auroc = result["metrics"]["test"]["macro"]
        assert len(metrics) == 3 and auroc["auroc_low"] <= auroc["auroc"] <= auroc["auroc_high"]
        assert "is left out of this run" not in (path / "train.log").read_text()
        # TensorBoard: one directory per run under the sweep; scalars are float32 there
        events = EventAccumulator(str(path / "tensorboard"))
        events.Reload()
        for record in metrics:
            for key, value in finite(record).items():
                (logged,) = [e for e in events.Scalars(key) if e.step == record["step"]]
                assert logged.value == np.float32(value), (key, record["step"])
        for key in ("auroc", "auroc_low", "auroc_high"):
            (logged,) = events.Scalars(f"result/metrics/test/macro/{key}")
            assert logged.value == np.float32(auroc[key]) and logged.step == result["steps"]
        assert rid in events.Tensors("config")[0].tensor_proto.string_val[0].decode()
        # W&B: the config, every evaluation at its step, the result in the summary
        wb_config, history, summary = wb_by_id[rid]
        assert wb_config["run_id"] == rid and wb_config["data"] == config["data"]
        assert [h["_step"] for h in history] == [r["step"] for r in metrics]
        for record, item in zip(metrics, history, strict=True):
            assert {k: item[k] for k in finite(record)} == finite(record)
        assert summary["result/metrics/test/macro/auroc_low"] == auroc["auroc_low"]
        assert summary["result/loss/test"] == result["loss"]["test"]
        # MLflow: params from the config, metric histories by step, the result
        ml = ml_by_id[rid]
        assert ml.info.status == "FINISHED" and ml.data.tags["scaling.run_id"] == rid
        assert ml.data.params["data/subset_size"] == str(config["data"]["subset_size"])
        for key in finite(metrics[0]):
            history = client.get_metric_history(ml.info.run_id, key)
            logged = {m.step: m.value for m in history}
            assert logged == {r["step"]: r[key] for r in metrics if key in finite(r)}, key
        assert ml.data.metrics["result/metrics/test/macro/auroc_high"] == auroc["auroc_high"]

    # Relaunched (with other trackers: not part of a run's identity): nothing logged again
    tb_before = tensorboard_state(st)
    again = scaling_bin(*command, "--tracker", "tensorboard", "--tracker", "wandb", cwd=work)
    assert again.returncode == 0 and "all 3 runs already finished" in again.stderr
    assert tensorboard_state(st) == tb_before and len(tb_before) == 3
    assert sorted((st / "wandb").glob("offline-run-*")) == wandb_dirs
    assert len(mlflow_runs(st / "mlflow.db", "trk")[1]) == 3


def test_a_missing_tracker_package_is_one_line_before_anything_runs(code_data, tmp_path):
    write_sweep(tmp_path, "trk", [40], code_data)
    blocked = (
        "import sys; sys.modules['wandb'] = None; from scaling.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", blocked, "sweep", "trk.py", "--store", "store", "--tracker",
         "wandb"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.startswith("error: --tracker wandb needs the wandb package")
    assert 'pip install -e ".[wandb]"' in out.stderr and len(out.stderr.splitlines()) == 1
    assert not (tmp_path / "store").exists()


def test_a_failing_tracker_is_a_warning_and_the_run_finishes(code_data, tmp_path):
    """MLflow's server is gone (nothing listens at its URI): the run is trained and
    recorded, TensorBoard still gets everything, the failure is a warning."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: a server that has gone
    sets = [f"--set={k}={v}" for k, v in {**TINY, "data.path": code_data}.items()]
    out = scaling_cmd(
        "run", "demo", "--store", str(tmp_path / "store"), *sets,
        "--tracker", "mlflow", "--tracker", "tensorboard",
        env={
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        },
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning: tracker mlflow failed and is left out of this run" in out.stderr
    (state,) = store.scan(tmp_path / "store")
    assert state.status == store.FINISHED
    assert "tracker mlflow failed" in (state.path / "train.log").read_text()
    assert len(list((state.path / "tensorboard").glob("events.*"))) == 1
