"""The analysis scripts, run as a user would, on small stores trained by the real code.

Every number a script writes is checked against the runs' own result.json files.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, SMALL_STORE, tiny_config

from scaling import store
from scaling.config import CODE15_CLASSES, run_id
from scaling.train import train_and_evaluate

ANALYSIS = REPO / "analysis"
FAST = ("--bootstrap", "20")  # bootstrap law fits
TRANSFER_RUN = {"max_steps": 10, "bootstrap": 20}
PRE_40 = "small:subset_size=40,data_seed=0"  # a selector of a pretraining run


def analysis(script: str, *args) -> subprocess.CompletedProcess:
    """`python analysis/<script>.py ARGS` in a fresh process."""
    return subprocess.run(
        [sys.executable, str(ANALYSIS / f"{script}.py"), *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def runs(root: Path, sweep: str) -> list[tuple[str, dict, dict]]:
    """(run_id, config, result) of each finished run of a sweep, read from its JSON files."""
    out = []
    for path in sorted((root / sweep).iterdir()):
        if (path / "result.json").exists():
            config = json.loads((path / "config.json").read_text())["config"]
            out.append((path.name, config, json.loads((path / "result.json").read_text())))
    return out


def assert_written(out: Path, *names: str) -> None:
    for name in names:
        assert (out / name).stat().st_size > 0, name


# ---------------------------------------------------------------------------
# Data scaling, per-class laws and paper tables: the "small" sweep of `small_store`


def test_data_scaling_curves_and_law_table(small_store, tmp_path):
    proc = analysis("data_scaling", small_store, "--out", tmp_path, "--sweep", "small", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert_written(tmp_path, "data_scaling.png", "data_scaling.pdf", "residuals.png", "laws.md")

    laws = pd.read_csv(tmp_path / "laws.csv")
    pairs = {(m, c) for m in ("auroc", "auprc", "f1") for c in ("micro", "macro")}
    assert set(zip(laws["metric"], laws["class"], strict=True)) == pairs | {("loss", "all")}
    fitted = laws[laws["note"].isna()]
    assert len(fitted) >= 4
    assert (fitted["runs"] == 8).all()
    assert (fitted["alpha_low"] <= fitted["alpha"]).all()
    assert (fitted["alpha"] <= fitted["alpha_high"]).all()

    points = pd.read_csv(tmp_path / "points.csv")
    by_size: dict[int, list[dict]] = {}
    for _, config, result in runs(small_store, "small"):
        by_size.setdefault(config["data"]["subset_size"], []).append(result)
    for metric, cls in (("auroc", "macro"), ("loss", "all")):
        shown = points[(points["metric"] == metric) & (points["class"] == cls)]
        if shown.empty:
            continue  # this law could not be fitted; its reason is in laws.csv
        assert shown["subset_size"].tolist() == [20, 40, 80, 160]
        assert (shown["n_seeds"] == 2).all()
        expected = [
            np.mean(
                [
                    r["loss"]["test"] if metric == "loss" else r["metrics"]["test"][cls][metric]
                    for r in by_size[size]
                ]
            )
            for size in (20, 40, 80, 160)
        ]
        np.testing.assert_allclose(shown["mean"], expected, rtol=1e-9)


def test_per_class_exponents_ranked(small_store, tmp_path):
    proc = analysis("per_class", small_store, "--out", tmp_path, *FAST)
    assert proc.returncode == 0, proc.stderr
    assert_written(tmp_path, "per_class_ranked.png", "per_class_ranked.pdf", "per_class_curves.png")

    table = pd.read_csv(tmp_path / "per_class_laws.csv")
    assert set(table["class"]) == set(CODE15_CLASSES)
    results = [result for _, _, result in runs(small_store, "small")]
    for row in table.itertuples():
        fewest = min(r["n_pos"]["test"][row[2]] for r in results)
        assert row.n_pos == fewest
        assert row.too_few_positives == (fewest < 10)
    fitted = table[table["alpha"].notna()]
    assert fitted["rank"].tolist() == list(range(1, len(fitted) + 1))
    assert fitted["alpha"].is_monotonic_decreasing
    assert table["rank"].isna().tolist() == table["alpha"].isna().tolist()


def test_paper_tables_show_each_runs_values_and_cis(small_store, tmp_path):
    proc = analysis("paper_tables", small_store, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    largest = [r for r in runs(small_store, "small") if r[1]["data"]["subset_size"] == 160]
    assert len(largest) == 2  # two seeds
    for rid, config, result in largest:
        assert_written(tmp_path, f"paper_table_{rid}.md", f"paper_table_{rid}.tex")
        table = pd.read_csv(tmp_path / f"paper_table_{rid}.csv", dtype=str, keep_default_na=False)
        assert table["class"].tolist() == [*config["data"]["classes"], "micro", "macro"]
        assert table.columns.tolist() == [
            "class", "n_pos", "AUROC", "AUPRC", "F1", "Sensitivity", "Specificity"
        ]  # fmt: skip
        metrics = result["metrics"]["test"]
        for cls in ("macro", "micro", config["data"]["classes"][0]):
            m = metrics[cls]
            row = table[table["class"] == cls].iloc[0]
            assert row["AUROC"] == f"{m['auroc']:.3f} ({m['auroc_low']:.3f}–{m['auroc_high']:.3f})"
            assert row["Sensitivity"].startswith(f"{m['recall']:.3f} (")
        first = config["data"]["classes"][0]
        assert table.loc[0, "n_pos"] == str(result["n_pos"]["test"][first])


def test_paper_tables_for_a_chosen_subset_size(small_store, tmp_path, scripts):
    assert (
        scripts["paper_tables"].main(
            [str(small_store), "--out", str(tmp_path), "--subset-size", "40"]
        )
        == 0
    )
    chosen = {rid for rid, c, _ in runs(small_store, "small") if c["data"]["subset_size"] == 40}
    assert {p.stem.removeprefix("paper_table_") for p in tmp_path.glob("*.csv")} == chosen


# ---------------------------------------------------------------------------
# Transfer: pretraining runs ("small") and transfer runs on the same synthetic data


@pytest.fixture(scope="module")
def transfer_store(small_store, code_data, tmp_path_factory) -> Path:
    """small_store's runs as pretraining, and a sweep "transfer" of 10 tiny transfer runs.

    Fine-tuning from 40 exams (named by a selector) and 160 exams (named by run dir) at
    k = 2 and 5, and from 40 on the whole target training set (k = 0); linear probe
    from 40 at k = 2 and 5; scratch at k = 2 (seeds 0 and 1) and 5.
    """
    root = tmp_path_factory.mktemp("transfer_store")
    shutil.copytree(small_store / "small", root / "small")
    pre_160 = tiny_config(code_data, subset_size=160, **SMALL_STORE)
    by_dir = f"small/{run_id(pre_160)}"
    plan = [("finetune", PRE_40, k, 0) for k in (2, 5, 0)]
    plan += [("finetune", by_dir, k, 0) for k in (2, 5)]
    plan += [("linear_probe", PRE_40, k, 0) for k in (2, 5)]
    plan += [("scratch", "", 2, 0), ("scratch", "", 2, 1), ("scratch", "", 5, 0)]
    for mode, pretrained, shots, seed in plan:
        cfg = tiny_config(
            code_data,
            mode=mode,
            pretrained=pretrained,
            shots=shots,
            data_seed=seed,
            init_seed=seed,
            **TRANSFER_RUN,
        )
        train_and_evaluate(cfg, root / "transfer" / run_id(cfg))
    return root


def keys_of(table: pd.DataFrame) -> list[tuple[str, int, int]]:
    """(mode, pretrained_subset_size or -1, shots) of each row."""
    sizes = table["pretrained_subset_size"].fillna(-1).astype(int)
    return list(zip(table["mode"], sizes, table["shots"], strict=True))


@pytest.mark.slow
def test_transfer_curves_and_table(transfer_store, tmp_path):
    proc = analysis("transfer", transfer_store, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_written(tmp_path, "transfer.png", "transfer.pdf", "transfer.md")

    table = pd.read_csv(tmp_path / "transfer.csv")
    size_of = {PRE_40: 40, "": -1}  # -1: scratch, no pretraining
    size_of |= {f"small/{rid}": 160 for rid, c, _ in runs(transfer_store, "small")}
    expected: dict[tuple, list[float]] = {}
    for _, config, result in runs(transfer_store, "transfer"):
        key = (
            config["transfer"]["mode"],
            size_of[config["transfer"]["pretrained"]],
            config["data"]["shots"],
        )
        expected.setdefault(key, []).append(result["metrics"]["test"]["macro"]["auroc"])
    # modes in order, pretraining sizes ascending, k ascending with 0 (all data) last
    assert keys_of(table) == [
        ("finetune", 40, 2), ("finetune", 40, 5), ("finetune", 40, 0),
        ("finetune", 160, 2), ("finetune", 160, 5),
        ("linear_probe", 40, 2), ("linear_probe", 40, 5),
        ("scratch", -1, 2), ("scratch", -1, 5),
    ]  # fmt: skip
    for key, row in zip(keys_of(table), table.itertuples(), strict=True):
        values = expected[key]
        assert row.n_runs == len(values)
        assert row.mean == pytest.approx(np.mean(values), rel=1e-9)
        assert np.isnan(row.ci_low) == (len(values) == 1)
    two_seeds = table[table["n_runs"] == 2].iloc[0]
    assert two_seeds["ci_low"] < two_seeds["mean"] < two_seeds["ci_high"]


# ---------------------------------------------------------------------------
# Joint law: small_store's runs (width 1) plus width 0.5 of the tiny rung


@pytest.fixture(scope="module")
def joint_store(small_store, code_data, tmp_path_factory) -> Path:
    """Sweep "small" of small_store (4 sizes x 2 seeds) plus width 0.5 at 40 and 160 exams."""
    root = tmp_path_factory.mktemp("joint_store")
    shutil.copytree(small_store / "small", root / "small", ignore=shutil.ignore_patterns("ckpt"))
    for size in (40, 160):
        cfg = tiny_config(code_data, subset_size=size, width=0.5, **SMALL_STORE)
        train_and_evaluate(cfg, root / "small" / run_id(cfg))
    return root


@pytest.mark.slow
def test_joint_law_and_compute_optimal_frontier(joint_store, tmp_path):
    proc = analysis("joint_frontier", joint_store, "--out", tmp_path, *FAST)
    assert proc.returncode == 0, proc.stderr
    assert_written(tmp_path, "joint.png", "joint.pdf", "joint_law.md", "frontier.md")

    law = pd.read_csv(tmp_path / "joint_law.csv").set_index("parameter")
    assert law.index.tolist() == ["E", "A", "B", "alpha", "beta", "flops_per_nd"]
    params = law.drop(index="flops_per_nd")
    assert ((params["ci_low"] <= params["value"]) & (params["value"] <= params["ci_high"])).all()
    flops_per_nd = [
        3
        * r["flops_per_example"]
        * r["train_examples_seen"]
        / (r["n_params"] * c["data"]["subset_size"])
        for _, c, r in runs(joint_store, "small")
    ]
    k = law.loc["flops_per_nd", "value"]
    assert k == pytest.approx(np.median(flops_per_nd), rel=1e-9)

    frontier = pd.read_csv(tmp_path / "frontier.csv")
    assert len(frontier) == 9
    assert frontier["compute_flops"].is_monotonic_increasing
    np.testing.assert_allclose(
        frontier["compute_flops"], k * frontier["n_params"] * frontier["subset_size"], rtol=1e-9
    )
    np.testing.assert_allclose(frontier["auroc"], 1 - frontier["error"], rtol=1e-12)

    points = pd.read_csv(tmp_path / "joint_points.csv")
    assert len(points) == 6  # (width 1: 4 sizes) + (width 0.5: 2 sizes)
    assert sorted(points["n_seeds"]) == [1, 1, 2, 2, 2, 2]


# ---------------------------------------------------------------------------
# A store that lacks what a script needs: a clear error and exit status 1


@pytest.fixture
def scripts(monkeypatch) -> dict:
    """The scripts as modules, to call `main(argv)` in this process."""
    monkeypatch.syspath_prepend(str(ANALYSIS))
    names = ("data_scaling", "per_class", "transfer", "joint_frontier", "paper_tables")
    return {name: importlib.import_module(name) for name in names}


@pytest.fixture
def odd_stores(small_store, code_data, tmp_path) -> dict[str, Path]:
    """An empty store, one whose only run never finished, and one with two sweeps."""
    (tmp_path / "empty").mkdir()
    cfg = tiny_config(code_data)
    store.init_run(store.run_dir(tmp_path / "pending", "small", cfg), cfg)
    for sweep in ("a", "b"):
        (tmp_path / "two" / sweep).parent.mkdir(exist_ok=True)
        (tmp_path / "two" / sweep).symlink_to(small_store / "small")
    return {name: tmp_path / name for name in ("empty", "pending", "two")}


@pytest.mark.parametrize(
    ("script", "store_name", "options", "message"),
    [
        ("data_scaling", "missing", (), "is not a folder"),
        ("paper_tables", "empty", (), "no runs in store"),
        ("per_class", "pending", (), "no finished runs"),
        ("data_scaling", "two", (), "several sweeps ['a', 'b']: pick --sweep"),
        ("transfer", "small", (), "no finished transfer runs"),
        ("joint_frontier", "small", (), "needs runs that vary both n_params and subset_size"),
        ("paper_tables", "small", ("--subset-size", "999"), "no finished run has subset_size 999"),
        ("data_scaling", "small", ("--metrics", "kappa"), "metric 'kappa' is not in"),
    ],
)
def test_a_store_without_what_is_needed_is_a_clear_error(
    scripts, odd_stores, small_store, tmp_path, capsys, script, store_name, options, message
):
    root = {"small": small_store, "missing": tmp_path / "missing", **odd_stores}[store_name]
    assert scripts[script].main([str(root), "--out", str(tmp_path / "out"), *options]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
