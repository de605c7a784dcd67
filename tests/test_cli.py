"""The `scaling` commands on a small finished store, and their errors."""

import pandas as pd
import pytest
from conftest import SMALL_STORE, TINY, scaling_cmd

from scaling import results


@pytest.fixture(scope="module")
def table(small_store):
    return results.collect(small_store)


def test_results_table_is_tidy(table):
    assert table["run_id"].nunique() == 8
    assert set(table["split"]) == {"val", "test"}
    assert {
        "auroc",
        "auprc",
        "f1",
        "recall",
        "specificity",
        "precision",
        "npv",
        "threshold",
        "loss",
    } <= set(table["metric"])
    one = table[(table.split == "test") & (table["class"] == "macro") & (table.metric == "auroc")]
    assert len(one) == 8 and one["value"].between(0, 1).all()
    assert (one["ci_low"] <= one["value"]).all() and (one["value"] <= one["ci_high"]).all()
    for column in (
        "subset_size",
        "data_seed",
        "init_seed",
        "n_params",
        "flops_per_example",
        "train_examples_seen",
        "steps",
        "wall_time_s",
        "device_kind",
        "status",
    ):
        assert column in table.columns, column
    per_class = table[(table.split == "test") & (table.metric == "auroc")]
    assert per_class["n_pos"].notna().sum() == 8 * 6  # 6 classes, micro/macro have none


@pytest.mark.parametrize("fmt", ["csv", "parquet", "markdown"])
def test_results_command_writes_each_format(small_store, tmp_path, fmt):
    out = tmp_path / f"table.{fmt}"
    proc = scaling_cmd("results", str(small_store), "--format", fmt, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    if fmt == "parquet":
        assert len(pd.read_parquet(out)) == len(results.collect(small_store))
    elif fmt == "csv":
        assert pd.read_csv(out)["run_id"].nunique() == 8
    else:
        assert out.read_text().startswith("| run_id | sweep | status |")


def test_fit_prints_law_with_cis_and_backtest(small_store):
    proc = scaling_cmd(
        "fit",
        str(small_store),
        "--metric",
        "loss",
        "--class",
        "all",
        "--bootstrap",
        "100",
        "--target",
        "0.2",
    )
    assert proc.returncode == 0, proc.stderr
    assert "alpha" in proc.stdout and "95%" in proc.stdout
    assert "rel_error" in proc.stdout  # backtest table
    assert "Target" in proc.stdout


def test_plot_and_report(small_store, tmp_path):
    proc = scaling_cmd(
        "plot",
        str(small_store),
        "--out",
        str(tmp_path / "fig"),
        "--bootstrap",
        "50",
        "--metrics",
        "auroc",
        "loss",
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "fig" / "scaling.png").stat().st_size > 1000
    assert (tmp_path / "fig" / "scaling.pdf").exists()
    proc = scaling_cmd(
        "report", str(small_store), "--out", str(tmp_path / "rep"), "--bootstrap", "50"
    )
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "data:image/png;base64," in html


def test_status_counts_runs(small_store):
    proc = scaling_cmd("status", str(small_store))
    assert proc.returncode == 0 and "8/8 done" in proc.stdout


def test_dry_run_lists_runs_status_and_cost(small_store, code_data, tmp_path):
    sweep = tmp_path / "small.py"
    fixed = {**TINY, **SMALL_STORE, "data.path": str(code_data)}
    sweep.write_text(
        "from scaling.sweep import Sweep\n"
        "def get_sweep():\n"
        "    return Sweep(name='small', experiment='demo', axes=({'subset_size': [20, 40, 999]},"
        f" {{'data_seed': [0], 'init_seed': [0]}}), fixed={fixed!r})\n"
    )
    proc = scaling_cmd("sweep", str(sweep), "--store", str(small_store), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(" finished " in line for line in lines) == 2
    assert sum(" pending " in line for line in lines) == 1
    assert "to run: 1 of 3" in proc.stdout and "FLOP" in proc.stdout
    assert "without a measurement" not in proc.stdout  # throughput known from the store


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["results", "/no/such/store"], "does not exist"),
        (["fit", "{store}", "--metric", "auroc", "--class", "nope"], "class 'nope'"),
        (["fit", "{store}", "--metric", "kappa"], "metric 'kappa'"),
        (["fit", "{store}", "--form", "broken2"], "needs at least 10 points"),
        (["sweep", "no_such_sweep"], "no sweeps named 'no_such_sweep'"),
        (["sweep", "demo", "--set", "subset_size=1"], "is an axis"),
        (["data", "check", "/no/such/data"], "not a folder"),
        (["sweep", "demo", "--set", "label_level=foo", "--dry-run"], "must be one of"),
        (["sweep", "demo", "--set", "transfer.mode=finetune", "--dry-run"], "transfer.pretrained"),
        (["plan", "demo", "--question", "nope", "--budget", "1h"], "unknown question 'nope'"),
    ],
)
def test_bad_input_gets_a_clear_error(small_store, args, message):
    proc = scaling_cmd(*[a.format(store=small_store) for a in args])
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr + proc.stdout  # `data check` lists its problems on stdout
    assert len(proc.stderr.strip().splitlines()) <= 1 and "Traceback" not in proc.stderr
