"""`scaling demo` end to end at small size: the curve slopes, a re-run trains nothing, bad input."""

import itertools
import re
import time

import pandas as pd
import pytest
from conftest import scaling_bin, scaling_cmd

from scaling import store

SMALL = ["--exams", "1500", "--patients", "1000", "--axis", "subset_size=40,100,250,600"]
SMALL += ["--set", "max_steps=250"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`scaling demo` typed in a new empty folder, with its default (relative) --out."""
    cwd = tmp_path_factory.mktemp("user")
    started = time.monotonic()
    proc = scaling_bin("demo", *SMALL, cwd=cwd, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return cwd / "demo_out", proc, time.monotonic() - started


@pytest.mark.slow
@pytest.mark.ray
def test_demo_writes_every_artifact(demo):
    out, proc, _ = demo
    assert (out / "data" / "exams.csv").exists() and list((out / "data").glob("exams_part*.hdf5"))
    for name in (
        "results.parquet",
        "results.csv",
        "scaling_curve.png",
        "scaling_curve.pdf",
        "report/report.html",
        "report/report.md",
    ):
        assert (out / name).stat().st_size > 0, name
    runs = store.scan(out / "store", "demo")
    assert len(runs) == 8 and {r.status for r in runs} == {"finished"}
    for r in runs:
        for name in ("config.json", "metrics.jsonl", "result.json"):
            assert (r.path / name).exists()
    assert re.search(r"runs: \d+/8 done", proc.stderr)  # progress was shown
    assert "ETA" in proc.stderr


@pytest.mark.slow
@pytest.mark.ray
def test_the_learning_curve_slopes(demo):
    out, proc, _ = demo
    table = pd.read_parquet(out / "results.parquet")
    auroc = table[(table.split == "test") & (table["class"] == "macro") & (table.metric == "auroc")]
    by_size = auroc.groupby("subset_size")["value"].mean()
    assert by_size.index.tolist() == [40, 100, 250, 600]
    assert by_size.iloc[-1] > by_size.iloc[0] + 0.05, by_size.to_dict()
    # the exponent of the AUROC law, "alpha = value [low, high]": its whole 95% CI above 0
    low = float(re.search(r"alpha = [0-9.eE+-]+ \[([0-9.eE+-]+),", proc.stdout).group(1))
    assert low > 0.01, proc.stdout
    assert "unidentified" not in proc.stdout.split("loss (all")[0]


@pytest.mark.slow
@pytest.mark.ray
def test_second_run_trains_nothing(demo):
    out, _, _ = demo
    before = {r.run_id: store.count_trainings(r.path) for r in store.scan(out / "store")}
    proc = scaling_bin("demo", *SMALL, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(0 trained now)" in proc.stdout
    after = {r.run_id: store.count_trainings(r.path) for r in store.scan(out / "store")}
    assert after == before


@pytest.mark.slow
@pytest.mark.ray
def test_fit_plot_and_report_read_the_store_by_its_relative_path(demo):
    cwd = demo[0].parent
    fit = scaling_bin("fit", "demo_out/store", "--bootstrap", "200", cwd=cwd)
    assert fit.returncode == 0, fit.stderr
    assert "alpha" in fit.stdout and "backtest" in fit.stdout
    plot = scaling_bin("plot", "demo_out/store", "--out", "figures", "--metrics", "auroc",
                       "--bootstrap", "100", cwd=cwd)  # fmt: skip
    assert plot.returncode == 0, plot.stderr
    assert (cwd / "figures" / "scaling.png").stat().st_size > 0
    report = scaling_bin("report", "demo_out/store", "--out", "rep", "--bootstrap", "100", cwd=cwd)
    assert report.returncode == 0, report.stderr
    assert "Fitted laws" in (cwd / "rep" / "report.md").read_text()
    results = scaling_bin("results", "demo_out/store", "--format", "markdown", cwd=cwd)
    assert results.returncode == 0 and results.stdout.count("\n") > 8 * 10


def test_unwritable_out_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = scaling_cmd("demo", "--out", str(blocker / "sub"))
    assert proc.returncode == 2
    assert "cannot write to output directory" in proc.stderr and str(blocker) in proc.stderr


def test_bad_option_is_a_clear_error(tmp_path):
    proc = scaling_cmd("demo", "--out", str(tmp_path), "--exams", "many")
    assert proc.returncode == 2 and "invalid int value: 'many'" in proc.stderr
    proc = scaling_cmd("demo", "--out", str(tmp_path), "--set", "train.lrr=1")
    assert proc.returncode == 2 and "did you mean 'train.lr'" in proc.stderr
    assert not (tmp_path / "store").exists()


def test_demo_subsets_are_nested_and_patient_disjoint(demo):
    from scaling.config import override
    from scaling.run_data import open_splits
    from scaling.sweep import load_experiment

    out, _, _ = demo
    base = override(load_experiment("demo"), {"data.path": str(out / "data")}).data
    splits = [open_splits(override_data(base, n)) for n in (40, 100, 250, 600)]
    for small, large in itertools.pairwise(splits):
        assert set(small.train.rows) < set(large.train.rows)
    held_out = set(splits[0].val.patients) | set(splits[0].test.patients)
    assert not held_out & set(splits[-1].pool.patients)
    assert not set(splits[0].val.patients) & set(splits[0].test.patients)


def override_data(data, subset_size):
    from dataclasses import replace

    return replace(data, subset_size=subset_size)
