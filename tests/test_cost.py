"""Cost before launch: every row says where its throughput came from, and the whole-pool run
is sized from the dataset (or marked unknown with the reason), never listed as free."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from conftest import SMALL_STORE, TINY, scaling_bin, tiny_config

from scaling import cost
from scaling.run_data import open_splits
from scaling.sweep import load_sweep

SWEEP = """from scaling.sweep import Sweep
def get_sweep():
    return Sweep(name={name!r}, experiment='demo', axes=({{'subset_size': {sizes}}},),
                 fixed={fixed!r})
"""


def write_sweep(folder: Path, name: str, sizes: list[int], **fixed) -> str:
    (folder / f"{name}.py").write_text(
        SWEEP.format(name=name, sizes=sizes, fixed={**TINY, **fixed})
    )
    return f"{name}.py"


def test_whole_pool_run_is_sized_from_the_dataset(code_data, tmp_path):
    epochs = {"data.path": str(code_data), "max_steps": 0, "max_epochs": 2}
    out = scaling_bin("sweep", write_sweep(tmp_path, "pool", [20, 0], **epochs), "--dry-run",
                      cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    pool = len(open_splits(tiny_config(code_data, subset_size=0, **epochs).data).pool)
    [row] = [line for line in out.stdout.splitlines() if "subset_size=0 " in line]
    assert f"whole pool {pool:,d} exams" in row
    assert f"examples {2 * math.ceil(pool / 16) * 16:>11,d}" in row  # 2 epochs of batch 16
    assert " 0 FLOP" not in row and " ? " not in row
    assert "reference cpu tinyx1024" in row  # no finished run: the reference table


def test_whole_pool_run_without_data_is_unknown_with_the_reason(tmp_path):
    sweep = write_sweep(tmp_path, "nodata", [20, 0], **{"data.path": "missing", "max_steps": 0,
                                                         "max_epochs": 2})  # fmt: skip
    out = scaling_bin("sweep", sweep, "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    [row] = [line for line in out.stdout.splitlines() if "subset_size=0 " in line]
    assert "examples           ?" in row and "dataset not readable" in row and "missing" in row
    assert "plus 1 runs of unknown cost" in out.stdout
    assert "reference throughputs (scaling/reference_throughput.csv):" in out.stdout


def test_measured_throughput_wins_over_the_reference(small_store, code_data, tmp_path):
    fixed = {**SMALL_STORE, "data.path": str(code_data)}
    sweep = write_sweep(tmp_path, "small", [20, 999], **fixed)
    out = scaling_bin("sweep", sweep, "--store", str(small_store), "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if "subset_size=" in line]
    assert all("measured (8 runs)" in row for row in rows)
    assert "to run: 1 of 2" in out.stdout and "reference throughputs" not in out.stdout


def test_reference_scales_by_flops_and_names_its_device(code_data):
    cfg = tiny_config(code_data, subset_size=20)
    cpu, gpu = cost.reference_throughput(cfg, "cpu"), cost.reference_throughput(cfg, "gpu")
    assert cpu.source.startswith("reference cpu tinyx1024") and math.isclose(
        cpu.examples_per_s,
        494 * 4,
        rel_tol=0.01,  # a quarter of the samples: 1/4 of the FLOPs
    )
    assert gpu.source.startswith("reference gpu ribeirox4096") and gpu.examples_per_s > 9111
    unknown = cost.reference_throughput(cfg, "tpu")
    assert math.isnan(unknown.examples_per_s) and "no reference throughput" in unknown.source
    res = load_sweep("code15").profiles
    assert [cost.device_kind(res[p]) for p in ("cpu", "gpu8", "tpu")] == ["cpu", "gpu", "tpu"]
    bf16 = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, dtype="bfloat16"))
    assert "bfloat16" in cost.reference_throughput(bf16, "gpu").source
