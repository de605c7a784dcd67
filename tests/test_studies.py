"""Every experiment and sweep file of the studies loads and expands (dry run)."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, scaling_cmd

from scaling.config import RunConfig
from scaling.sweep import PROFILES, expand, load_experiment, load_sweep

EXPERIMENTS = sorted(p.stem for p in (REPO / "experiments").glob("*.py"))
SWEEPS = sorted(p.stem for p in (REPO / "sweeps").glob("*.py"))


def test_the_studies_are_all_there():
    assert {
        "demo",
        "code15",
        "code2",
        "code2_open",
        "ladder",
        "transfer_ptbxl",
        "transfer_cpsc",
    } <= set(SWEEPS)
    assert set(SWEEPS) <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_loads(name):
    cfg = load_experiment(name)
    assert isinstance(cfg, RunConfig) and cfg.name == name


@pytest.mark.parametrize("name", SWEEPS)
def test_sweep_expands_with_every_profile(name):
    sweep = load_sweep(name)
    runs = expand(sweep)
    assert runs and len({r.run_id for r in runs}) == len(runs)
    for profile in sweep.profiles:
        expand(sweep.__class__(**{**sweep.__dict__, "profile": profile}))
    if name != "demo":
        assert set(PROFILES) <= set(sweep.profiles)  # one CPU machine, 8-GPU node, TPU VM


@pytest.mark.parametrize("name", SWEEPS)
def test_sweep_dry_run(name, tmp_path: Path):
    proc = scaling_cmd("sweep", name, "--store", str(tmp_path), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    n = len(expand(load_sweep(name)))
    assert f"{n} runs" in proc.stdout and f"to run: {n} of {n}" in proc.stdout


def test_code2_study_is_the_papers_setting():
    cfg = load_experiment("code2")
    assert (cfg.data.sample_rate, cfg.data.length, len(cfg.data.leads)) == (400.0, 4096, 12)
    assert cfg.data.classes == ()  # every class column of exams.csv: the 66 of CODE-II
    assert cfg.data.test_path  # CODE-II-test when present
    sizes = [r.config.data.subset_size for r in expand(load_sweep("code2"))]
    assert min(s for s in sizes if s) == 1000 and 0 in sizes  # 1,000 exams to the whole pool
    assert sizes.count(1000) > sizes.count(0)  # more seeds at the small sizes


def test_transfer_study_grid():
    runs = expand(load_sweep("transfer_ptbxl"))
    shots = {r.config.data.shots for r in runs}
    assert shots == {0, 1, 2, 5, 10, 20, 50, 100}
    assert {r.config.transfer.mode for r in runs} == {"finetune", "linear_probe", "scratch"}
    scratch = [r for r in runs if r.config.transfer.mode == "scratch"]
    assert all(r.config.transfer.pretrained == "" for r in scratch)  # one baseline per k/seed


TINY_MODEL = ["--set=stem_filters=8", "--set=filters=8,12,16,20", "--set=kernel_size=7"]
SHORT = [
    "--set=sample_rate=400",
    "--set=length=1024",
    "--set=train.batch_size=16",
    "--set=max_steps=20",
    "--set=eval_every=10",
    "--set=bootstrap=20",
]


@pytest.mark.slow
@pytest.mark.ray
def test_transfer_study_end_to_end_on_the_real_cpsc_sample(
    ray_head, code_data, shared_data, tmp_path
):
    """code15 pretraining (tiny) -> transfer_cpsc on the real sample -> analysis/transfer.py."""
    address, _ = ray_head
    st = str(tmp_path / "store")
    pre = scaling_cmd(
        "sweep",
        "code15",
        "--store",
        st,
        "--address",
        address,
        "--profile",
        "cpu",
        "--axis",
        "subset_size=80,240",
        "--axis",
        "data_seed=0,0",
        "--axis",
        "init_seed=0,0",
        f"--set=data.path={code_data}",
        "--set=val_fraction=0.2",
        "--set=test_fraction=0.2",
        *TINY_MODEL,
        *SHORT,
    )
    assert pre.returncode == 0, pre.stdout + pre.stderr
    transfer = scaling_cmd(
        "sweep",
        "transfer_cpsc",
        "--store",
        st,
        "--address",
        address,
        "--profile",
        "cpu",
        "--axis",
        "pretrained=code15:subset_size=240",
        "--axis",
        "shots=2,0",
        "--axis",
        "data_seed=0",
        f"--set=data.path={shared_data / 'cpsc_sample' / 'records'}",
        *TINY_MODEL,
        *SHORT,
    )
    assert transfer.returncode == 0, transfer.stdout + transfer.stderr
    assert "6/6 finished" in transfer.stdout  # 2 shots x (finetune, probe) + 2 scratch baselines
    out = tmp_path / "analysis"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "analysis" / "transfer.py"),
            st,
            "--out",
            str(out),
            "--sweep",
            "transfer_cpsc",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = pd.read_csv(next(out.glob("transfer*.csv")))
    assert set(table["mode"]) == {"finetune", "linear_probe", "scratch"}
    assert set(table["shots"]) == {0, 2}
