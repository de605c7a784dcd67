"""One run end to end: store files, determinism, resume after a kill, divergence, data parallel."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, tiny_config
from etils import epath

from scaling import store
from scaling.budget import resolve_schedule
from scaling.config import ConfigError, override, to_dict
from scaling.train import Diverged, InjectedFailure, train_and_evaluate

MEASURED = ("wall_time_s", "train_time_s", "examples_per_s", "host", "seconds")


def _metrics(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in MEASURED}


@pytest.fixture(scope="module")
def finished(code_data, tmp_path_factory):
    cfg = tiny_config(code_data)
    path = tmp_path_factory.mktemp("runs") / "a"
    return cfg, path, train_and_evaluate(cfg, path)


def test_run_writes_its_store_files(finished):
    cfg, path, result = finished
    for name in ("config.json", "metrics.jsonl", "result.json", "train.log", "trainings.jsonl"):
        assert (path / name).exists(), name
    assert (path / "ckpt" / "latest").is_dir() and (path / "ckpt" / "best").is_dir()
    assert store.run_status(epath.Path(path)) == store.FINISHED
    lines = store.read_metrics(epath.Path(path))
    assert [r["step"] for r in lines] == [10, 20, 30]
    for key in (
        "train_examples_seen",
        "steps",
        "epochs",
        "wall_time_s",
        "examples_per_s",
        "device_kind",
        "device_count",
        "n_params",
        "flops_per_example",
        "best_step",
    ):
        assert key in result, key
    assert result["steps"] == 30 and result["train_examples_seen"] == 30 * 16
    phases = result["seconds"]  # where the wall time went, every phase timed
    assert set(phases) == {"setup", "checkpoint", "first_step", "validate", "store", "evaluate",
                           "train", "other"}  # fmt: skip
    assert min(phases.values()) >= 0
    assert phases["train"] == pytest.approx(result["train_time_s"], abs=1e-4)
    assert sum(phases.values()) == pytest.approx(result["wall_time_s"], abs=0.01)
    assert result["n_params"] > 1000 and result["flops_per_example"] > result["n_params"]
    test = result["metrics"]["test"]
    assert set(test) == {*cfg.data.classes, "micro", "macro"}
    assert 0.0 <= test["macro"]["auroc"] <= 1.0
    assert test["macro"]["auroc_low"] <= test["macro"]["auroc"] <= test["macro"]["auroc_high"]


def test_finished_run_is_not_trained_again(finished):
    cfg, path, result = finished
    again = train_and_evaluate(cfg, path)
    assert again == result
    assert store.count_trainings(epath.Path(path)) == 1


def test_same_config_same_bits(finished, tmp_path):
    cfg, _, result = finished
    assert _metrics(train_and_evaluate(cfg, tmp_path / "b")) == _metrics(result)


def test_different_init_seed_differs(finished, tmp_path):
    cfg, _, result = finished
    other = train_and_evaluate(override(cfg, {"init_seed": 1}), tmp_path / "c")
    assert other["metrics"]["test"]["macro"] != result["metrics"]["test"]["macro"]


_RUN = """
import json, sys
from scaling.config import from_dict
from scaling.train import train_and_evaluate
cfg = from_dict(json.loads(sys.argv[1]))
train_and_evaluate(cfg, sys.argv[2])
"""


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(code_data, tmp_path):
    cfg = tiny_config(code_data, max_steps=150, eval_every=10, early_stopping=0)
    reference = train_and_evaluate(cfg, tmp_path / "uninterrupted")
    path = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN, json.dumps(to_dict(cfg)), str(path)], cwd=REPO
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(store.read_metrics(epath.Path(path))) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (path / "result.json").exists(), "the run finished before it could be killed"
    assert (path / "lock").exists()  # left behind by the dead process: stale, recovered below
    resumed = train_and_evaluate(cfg, path)
    starts = [
        json.loads(x)["start_step"] for x in (path / "trainings.jsonl").read_text().splitlines()
    ]
    assert starts[0] == 0 and starts[1] >= 20
    assert _metrics(resumed) == _metrics(reference)


def test_divergence_is_recorded_not_a_result(code_data, tmp_path):
    cfg = tiny_config(code_data, **{"train.lr": float("inf")})
    with pytest.raises(Diverged) as info:
        train_and_evaluate(cfg, tmp_path / "d")
    failure = json.loads((tmp_path / "d" / "failure.json").read_text())
    assert failure["status"] == "diverged" and failure["step"] == info.value.step
    assert info.value.step == 1  # step 0's loss is finite; its infinite update ruins step 1
    assert not (tmp_path / "d" / "result.json").exists()
    assert store.run_status(epath.Path(tmp_path / "d")) == store.DIVERGED


def test_injected_failure_keeps_its_traceback(code_data, tmp_path):
    cfg = tiny_config(code_data, fail_at_step=3)
    with pytest.raises(InjectedFailure):
        train_and_evaluate(cfg, tmp_path / "f")
    failure = json.loads((tmp_path / "f" / "failure.json").read_text())
    assert failure["status"] == "failed" and "InjectedFailure" in failure["traceback"]
    assert not (tmp_path / "f" / "lock").exists()


@pytest.mark.slow
def test_two_devices_match_one(finished, tmp_path):
    cfg, _, result = finished
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = tmp_path / "dp"
    subprocess.run(
        [sys.executable, "-c", _RUN, json.dumps(to_dict(cfg)), str(out)],
        cwd=REPO,
        env=env,
        check=True,
    )
    dp = json.loads((out / "result.json").read_text())
    assert dp["device_count"] == 2
    assert dp["loss"]["test"] == pytest.approx(result["loss"]["test"], rel=1e-4, abs=1e-5)
    for cls, row in result["metrics"]["test"].items():
        assert dp["metrics"]["test"][cls]["auroc"] == pytest.approx(row["auroc"], abs=2e-3), cls


def test_class_weighting_and_cosine_schedule_run(code_data, tmp_path):
    cfg = tiny_config(
        code_data,
        class_weighting=True,
        schedule="cosine",
        warmup_steps=5,
        optimizer="adamw",
        weight_decay=1e-4,
    )
    result = train_and_evaluate(cfg, tmp_path / "w")
    lrs = [r["lr"] for r in store.read_metrics(epath.Path(tmp_path / "w"))]
    assert lrs[0] > lrs[-1]  # cosine decays
    assert result["status"] == "finished"


def test_schedule_resolution():
    s = resolve_schedule(1000, batch_size=64, max_epochs=3, max_steps=0)
    assert (s.steps_per_epoch, s.total_steps, s.eval_every) == (16, 48, 16)
    s = resolve_schedule(1000, batch_size=64, max_epochs=3, max_steps=20, eval_every=5)
    assert (s.total_steps, s.eval_every, s.checkpoint_every) == (20, 5, 5)
    with pytest.raises(ValueError, match=r"max_epochs or train\.max_steps"):
        resolve_schedule(1000, batch_size=64, max_epochs=0, max_steps=0)


def test_bfloat16_compute_option_trains(code_data, tmp_path):
    cfg = tiny_config(code_data, dtype="bfloat16")
    result = train_and_evaluate(cfg, tmp_path / "bf16")
    assert result["status"] == "finished" and result["loss"]["test"] < 1.0
    with pytest.raises(ConfigError, match=r"'train\.dtype' must be one of float32, bfloat16"):
        tiny_config(code_data, dtype="float16")


@pytest.mark.parametrize("damage", ["removed", "truncated"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(finished, tmp_path, damage):
    cfg, _, result = finished
    path = tmp_path / "damaged"
    with pytest.raises(InjectedFailure):
        train_and_evaluate(override(cfg, {"fail_at_step": 25}), path)
    newest = path / "ckpt" / "latest" / "20"
    files = [f for f in newest.rglob("*") if f.is_file() and f.stat().st_size > 0]
    assert files, "no checkpoint at step 20"
    for f in files:  # after the commit: its files go missing or are cut short
        if damage == "removed":
            f.unlink()
        else:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    resumed = train_and_evaluate(cfg, path)
    starts = [json.loads(x)["start_step"] for x in (path / "trainings.jsonl").open()]
    assert starts == [0, 10]  # the damaged step 20 was skipped, step 10 resumed
    assert _metrics(resumed) == _metrics(result)
