"""Per-size tuning: the tune axis of a sweep, the `selected` runs, and laws of tuned curves."""

import json
import math
import os
import re
import signal
import time

import numpy as np
import pytest
from conftest import TINY, scaling_bin
from etils import epath

from scaling import halving, laws, results, store, tuning
from scaling.config import RunConfig, override
from scaling.sweep import Sweep, SweepError, expand

TUNE_AT_SWEEP = """
from scaling.sweep import Resources, Sweep

def get_sweep():
    return Sweep(
        name="tuned_at",
        experiment="demo",
        axes=({{"subset_size": [40, 80, 160]}},),
        fixed={fixed},
        tune={{"lr": [1e-3, 1e-2]}},
        tune_at=(40, 160),
        profiles={{"cpu": Resources(num_cpus=1)}},
    )
"""

TUNED_SWEEP = """
from scaling.sweep import Resources, Sweep

def get_sweep():
    return Sweep(
        name="tuned",
        experiment="demo",
        axes=({{"subset_size": [40, 80, 160]}}, {{"data_seed": [0, 1], "init_seed": [0, 1]}}),
        fixed={fixed},
        tune={{"train.lr": [1e-3, 1e-2]}},
        select="val_loss",
        profiles={{"cpu": Resources(num_cpus=1)}},
    )
"""

HALVING_SWEEP = """
from scaling.sweep import Resources, Sweep

def get_sweep():
    return Sweep(
        name="halved",
        experiment="demo",
        axes=({{"subset_size": [80, 160]}},),
        fixed={fixed},
        tune={{"train.lr": [1e-4, 3e-3, 3e-2]}},
        halving={halving},
        profiles={{"cpu": Resources(num_cpus=1)}},
    )
"""


def _sweep(**kw) -> Sweep:
    return Sweep(name="t", experiment="demo", axes=({"subset_size": [10, 20]},), **kw)


def test_tuning_points_are_runs_of_every_size_and_bad_specs_name_the_key():
    runs = expand(
        _sweep(tune={"train.lr": [3e-4, 1e-3, 3e-3], "dropout": [0.1, 0.3]}), base=RunConfig()
    )
    assert len(runs) == 12 and len({r.run_id for r in runs}) == 12
    points = {(r.config.data.subset_size, r.config.train.lr, r.config.model.dropout) for r in runs}
    assert len(points) == 12
    sampled = [
        [
            (r.config.train.lr, r.config.model.dropout)
            for r in expand(_sweep(**kw), base=RunConfig())
        ]
        for kw in [dict(tune={"lr": [1, 2, 3], "dropout": [0.1, 0.3]}, tune_samples=3)] * 2
    ]
    assert sampled[0] == sampled[1] and len(sampled[0]) == 6 and len(set(sampled[0])) == 3
    bad = [
        ({"tune": {"train.lrr": [1e-3]}}, "tune key 'train.lrr'.*did you mean 'train.lr'"),
        ({"tune": {"lr": []}}, "tune key 'lr' needs a non-empty list"),
        ({"tune": {"lr": [1e-3]}, "select": "test_auroc"}, "never on test"),
        ({"tune": {"lr": [1e-3]}, "select": "val_accuracy"}, "not a validation metric"),
        ({"tune": {"lr": [1e-3]}, "fixed": {"train.lr": 1.0}}, "'train.lr' is tuned"),
        ({"tune": {"subset_size": [1]}}, "'data.subset_size' is tuned"),
        ({"tune": {"lr": [1e-3, 1e-2]}, "tune_samples": 3}, "tuning grid has 2 points"),
    ]
    for kw, match in bad:
        with pytest.raises(SweepError, match=match):
            expand(_sweep(**kw), base=RunConfig())
    with pytest.raises(SweepError, match="'lr' is tuned"):
        expand(_sweep(tune={"lr": [1e-3]}), {"lr": 0.1}, base=RunConfig())


# ---------------------------------------------------------------------------
# Planted results: the best learning rate falls with size


LRS = (1e-4, 1e-3, 1e-2)
SIZES = (100, 300, 1000, 3000, 10000, 30000)


def _planted_error(size: int, lr: float, seed: int) -> float:
    """Test error of a recipe: a clean power law at the size's best lr (1e-2 at the smallest
    size, 1e-4 at the largest), worse the further lr is from it in log10."""
    best = -2 - 2 * math.log(size / SIZES[0]) / math.log(SIZES[-1] / SIZES[0])
    miss = (math.log10(lr) - best) ** 2
    noise = 1 + 0.01 * np.random.default_rng([size, seed, int(-math.log10(lr))]).standard_normal()
    return 2.0 * size**-0.5 * math.exp(0.35 * miss) * noise


def plant(root: epath.Path) -> dict[tuple[int, int], str]:
    """A tuned store of planted results; returns the run id that should win per (size, seed).

    Validation loss ranks the points as test does, except at (300, 0) where test would
    prefer another point than validation: the choice must follow validation.
    """
    configs, winners = [], {}
    for size in SIZES:
        for seed in (0, 1):
            scores = {}
            for lr in LRS:
                cfg = override(
                    RunConfig(),
                    {"subset_size": size, "data_seed": seed, "init_seed": seed, "lr": lr},
                )
                path = store.run_dir(root, "planted", cfg)
                store.init_run(path, cfg)
                err = _planted_error(size, lr, seed)
                val = err * (1.3 if (size, seed, lr) == (300, 0, 1e-2) else 1.0)
                scores[path.name] = val
                result = {
                    "metrics": {
                        s: {"macro": {"auroc": 1 - e}} for s, e in (("val", val), ("test", err))
                    },
                    "loss": {"val": val, "test": err},
                    "train_exams": size,
                }
                store.write_result(path, result)
                configs.append(cfg)
            winners[size, seed] = min(scores, key=scores.get)
    tuning.write_record(root, "planted", ["train.lr"], configs, "val_loss")
    return winners


def test_selected_runs_win_on_validation_and_the_tuned_law_differs(tmp_path):
    winners = plant(epath.Path(tmp_path / "store"))
    table = results.collect(tmp_path / "store")
    runs = table.drop_duplicates("run_id")
    chosen = runs[runs["selected"]]
    assert {(r.subset_size, r.data_seed): r.run_id for r in chosen.itertuples()} == winners
    assert chosen[(chosen.subset_size == 300) & (chosen.data_seed == 0)]["lr"].item() == 1e-3
    # the planted optimum moves from lr 1e-2 at 100 exams to 1e-4 at 30,000
    by_size = chosen.groupby("subset_size")["lr"].agg(lambda s: s.mode()[0])
    assert by_size[100] == 1e-2 and by_size[30000] == 1e-4
    fixed = table[table["tuning_point"] == 0]
    fits = {
        name: laws.fit_metric(part, metric="loss", cls="all", form="power", n_bootstrap=50).law
        for name, part in (("fixed", fixed), ("tuned", results.selected(table)))
    }
    assert fits["tuned"].params["alpha"] == pytest.approx(0.5, abs=0.1)
    assert fits["fixed"].params["alpha"] - fits["tuned"].params["alpha"] > 0.15
    rmse = {k: float(np.sqrt(np.mean(f.residuals**2))) for k, f in fits.items()}
    assert rmse["tuned"] < 0.5 * rmse["fixed"], rmse


def test_fit_and_report_use_selected_runs_unless_all_runs(tmp_path):
    root = epath.Path(tmp_path / "store")
    plant(root)
    # a size whose lr was interpolated, not tuned: selected, and stated in the report
    cfg = override(RunConfig(), {"subset_size": 600, "lr": 2e-3})
    path = store.run_dir(root, "planted", cfg)
    store.init_run(path, cfg)
    err = 2.0 * 600**-0.5
    store.write_result(path, {"loss": {"val": err, "test": err}, "train_exams": 600})
    tuning.add_interpolated(root, "planted", {path.name: {"subset_size": 600, "train.lr": 2e-3}})
    assert results.collect(root).set_index("run_id").loc[path.name, "selected"].all()
    args = ("--metric", "loss", "--form", "power", "--bootstrap", "20")
    tuned = scaling_bin("fit", "store", *args, cwd=tmp_path)
    every = scaling_bin("fit", "store", *args, "--all-runs", cwd=tmp_path)
    assert tuned.returncode == 0 and every.returncode == 0, tuned.stderr + every.stderr
    assert tuned.stdout != every.stdout
    rep = scaling_bin("report", "store", "--out", "rep", "--bootstrap", "20", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    section = text.split("## Per-size tuning")[1].split("\n## ")[0]
    assert "val_loss (lower is better)" in section
    assert "fixed recipe: lr=0.0001 (first point)" in section and "| tuned |" in section
    assert "Most often selected" in section
    assert len(re.findall(r"^\| (100|300|1000|3000|10000|30000) \|", section, re.M)) == 12
    assert "interpolated in log-size" in section and "subset_size 600: lr=0.002" in section


# ---------------------------------------------------------------------------
# End to end: the installed command, from an empty folder, on a real Ray head


def _write_tuned_sweep(folder, data, name="tuned", text=TUNED_SWEEP) -> None:
    fixed = {**TINY, "data.path": os.path.relpath(data, folder)}
    (folder / f"{name}.py").write_text(text.format(fixed=repr(fixed)))


@pytest.mark.slow
@pytest.mark.ray
def test_tuned_sweep_end_to_end_resumes_and_selects_on_validation(ray_head, code_data, tmp_path):
    address, _ = ray_head
    _write_tuned_sweep(tmp_path, code_data)
    cmd = ("sweep", "tuned.py", "--store", "store", "--address", address)
    dry = scaling_bin(*cmd[:4], "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "12 runs" in dry.stdout and "to run: 12 of 12" in dry.stdout
    for size in (40, 80, 160):
        assert f"subset_size={size}: 4 runs (2 settings of the other axes × 2 tuning points)" in (
            dry.stdout
        )
    proc = scaling_bin(*cmd, cwd=tmp_path, wait=False)
    done = epath.Path(tmp_path / "store" / "tuned")
    deadline = time.monotonic() + 300
    while not list(done.glob("*/result.json")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no run finished"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    before = {p.parent.name for p in done.glob("*/result.json")}
    assert 0 < len(before) < 12
    again = scaling_bin(*cmd, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    trained = int(re.search(r"12/12 finished \((\d+) trained now", again.stdout).group(1))
    assert trained <= 12 - len(before)
    counts = {s.run_id: store.count_trainings(s.path) for s in store.scan(done.parent, "tuned")}
    assert all(counts[rid] == 1 for rid in before)
    third = scaling_bin(*cmd, cwd=tmp_path)
    assert third.returncode == 0 and "all 12 runs already finished" in third.stderr
    status = scaling_bin("status", "store", cwd=tmp_path)
    assert "12/12 done" in status.stdout

    table = results.collect(tmp_path / "store")
    runs = table.drop_duplicates("run_id")
    for (size, seed), group in runs.groupby(["subset_size", "data_seed"]):
        val = {
            rid: json.loads((done / rid / "result.json").read_text())["loss"]["val"]
            for rid in group["run_id"]
        }
        assert len(val) == 2 and set(group["lr"]) == {1e-3, 1e-2}, (size, seed)
        assert group[group["selected"]]["run_id"].tolist() == [min(val, key=val.get)]
    assert runs["selected"].sum() == 6


@pytest.mark.slow
@pytest.mark.ray
def test_tuning_at_two_sizes_interpolates_the_winner_in_log_size(ray_head, code_data, tmp_path):
    address, _ = ray_head
    _write_tuned_sweep(tmp_path, code_data, "tuned_at", TUNE_AT_SWEEP)
    cmd = ("sweep", "tuned_at.py", "--store", "store")
    dry = scaling_bin(*cmd, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "to run: 5 of 5" in dry.stdout
    assert "subset_size=80: 1 runs (values interpolated after tuning" in dry.stdout
    first = scaling_bin(*cmd, "--address", address, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "4/4 finished (4 trained now" in first.stdout
    assert "1/1 finished (1 trained now" in first.stdout
    runs = results.collect(tmp_path / "store").drop_duplicates("run_id")
    done = tmp_path / "store" / "tuned_at"

    def val(rid):
        return json.loads((done / rid / "result.json").read_text())["loss"]["val"]

    best = {}
    for size in (40, 160):
        group = runs[runs["subset_size"] == size]
        best[size] = group.loc[group["run_id"].map(val).idxmin(), "lr"]
        assert group[group["selected"]]["lr"].tolist() == [best[size]]
    middle = runs[runs["subset_size"] == 80]
    assert len(middle) == 1 and middle["selected"].item()
    assert middle["lr"].item() == pytest.approx(math.sqrt(best[40] * best[160]), rel=1e-3)
    assert f"interpolated train.lr={middle['lr'].item()}" in first.stdout
    again = scaling_bin(*cmd, "--address", address, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.findall(r"\((\d+) trained now", again.stdout) == ["0", "0"], again.stdout
    assert again.stderr.count("already finished") == 2, again.stderr


def test_interpolation_in_log_size_is_clamped_and_keeps_types():
    winners = {
        100: {"train.lr": 1e-2, "train.max_epochs": 10, "model.norm": "batch"},
        10000: {"train.lr": 1e-4, "train.max_epochs": 30, "model.norm": "layer"},
    }
    got = tuning.interpolate(winners, [10, 300, 1000, 3000, 0])
    assert got[1000]["train.lr"] == pytest.approx(1e-3)  # halfway in log size and log value
    assert got[1000]["train.max_epochs"] == 17  # 10 · 3^0.5, rounded
    assert got[10] == winners[100] and got[0] == winners[10000]  # clamped; 0: the whole pool
    assert got[3000]["model.norm"] == "layer" and got[300]["model.norm"] == "batch"  # nearest


def test_halving_rungs_keep_a_share_and_bad_specs_are_refused():
    assert halving.rungs(3, 3) == [halving.Rung(1 / 3, 1)]
    assert [r.keep for r in halving.rungs(10, 3)] == [4, 2, 1]
    assert [r.fraction for r in halving.rungs(10, 3)] == [1 / 27, 1 / 9, 1 / 3]
    assert halving.rungs(1, 2) == [] and halving.grid_share(1, 2) == 1.0
    assert halving.grid_share(3, 3) == pytest.approx((3 / 3 + 2 / 3) / 3)
    for kw, message in [
        (dict(halving=3), "halving needs tune"),
        (
            dict(tune={"lr": [1, 2]}, halving=1),
            re.escape("halving=1: use 0 (off) or an integer >= 2"),
        ),
        (dict(tune={"lr": [1, 2]}, halving=2, select="val_f1"), "not val_f1"),
    ]:
        with pytest.raises(SweepError, match=message):
            expand(_sweep(**kw), base=RunConfig())


@pytest.mark.slow
@pytest.mark.ray
def test_successive_halving_prunes_losers_at_the_rung_and_resumes_the_winner(
    ray_head, code_data, tmp_path
):
    address, _ = ray_head
    _write_tuned_sweep(tmp_path, code_data, "halved", HALVING_SWEEP.replace("{halving}", "3"))
    cmd = ("sweep", "halved.py", "--store", "store", "--address", address)
    dry = scaling_bin(*cmd[:4], "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "successive halving keeps 1/3 per rung: at most about 56%" in dry.stdout
    first = scaling_bin(*cmd, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "rung at 0.333 of training" in first.stdout
    assert "0/6 finished (0 trained now), 6 paused at their rung" in first.stdout
    assert "2/2 finished (2 trained now)" in first.stdout
    spared = re.search(r"pruned 4 of 6 tuning runs, sparing ([\d,]+) training", first.stdout)
    # batch 16, 30 steps of which 10 trained before the rung: 20 steps spared per pruned run
    assert spared and int(spared.group(1).replace(",", "")) == 4 * 20 * 16, first.stdout

    table = results.collect(tmp_path / "store").drop_duplicates("run_id")
    assert sorted(table["status"]) == ["finished"] * 2 + ["pruned"] * 4
    runs = table[table["selected"]]
    assert len(runs) == 2 and (runs["status"] == "finished").all()
    for size in (80, 160):
        states = [
            s
            for s in store.scan(tmp_path / "store", "halved")
            if store.load_config(s.path).data.subset_size == size
        ]
        assert sorted(s.status for s in states) == ["finished", "pruned", "pruned"], size
        at_rung = {
            s.run_id: min(r["val_loss"] for r in store.read_metrics(s.path) if r["step"] <= 10)
            for s in states
        }
        (winner,) = [s for s in states if s.status == store.FINISHED]
        assert at_rung[winner.run_id] == min(at_rung.values())
        assert runs[runs["subset_size"] == size]["run_id"].tolist() == [winner.run_id]
        assert [r["step"] for r in store.read_metrics(winner.path)] == [10, 20, 30]
        assert store.count_trainings(winner.path) == 2  # to the rung, then on from its checkpoint
        for s in states:
            if s.status == store.PRUNED:
                info = json.loads((s.path / "failure.json").read_text())
                assert (info["step"], info["total_steps"]) == (10, 30)
                assert max(r["step"] for r in store.read_metrics(s.path)) == 10
    status = scaling_bin("status", "store", cwd=tmp_path)
    assert "2/6 done" in status.stdout and "4 pruned" in status.stdout, status.stdout

    rep = scaling_bin("report", "store", "--out", "rep", "--bootstrap", "20", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    section = (tmp_path / "rep" / "report.md").read_text().split("## Per-size tuning")[1]
    assert "Successive halving pruned 4 of the 6 tuning runs" in section
    assert len(re.findall(r"^\| (80|160) \|.*pruned.*pruned", section, re.M)) == 2, section

    again = scaling_bin(*cmd, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "all 2 runs already finished" in again.stderr and "rung at" not in again.stdout

    _write_tuned_sweep(tmp_path, code_data, "halved", HALVING_SWEEP.replace("{halving}", "0"))
    full = scaling_bin(*cmd, cwd=tmp_path)  # the same runs without halving: the grid finishes
    assert full.returncode == 0, full.stdout + full.stderr
    assert "6/6 finished (4 trained now, 4 retried)" in full.stdout
    for s in store.scan(tmp_path / "store", "halved"):
        assert [r["step"] for r in store.read_metrics(s.path)] == [10, 20, 30]
        assert store.count_trainings(s.path) == 2
