"""The report: written from a results table, explains what it cannot fit, renders in a browser."""

from __future__ import annotations

import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from scaling.report import write_report

CLASSES = ("1dAVb", "RBBB", "AF")


def sweep_table(sizes=(250, 500, 1000, 2000, 4000, 8000, 16000), widths=(1.0,), metrics=None):
    """Runs of a data (and width) sweep whose errors follow a planted law, plus broken runs."""
    metrics = metrics or ("auroc", "auprc", "f1", "loss")
    rng = np.random.default_rng(0)
    rows = []
    for width in widths:
        n_params = 6.4e6 * width**2
        for size in sizes:
            for data_seed in (0, 1):
                run = {"run_id": f"w{width}-{size}-{data_seed}", "status": "finished"}
                run |= {"experiment": "code2_scaling", "sweep": "data", "subset_size": size}
                run |= {"width": width, "data_seed": data_seed, "init_seed": 0}
                run |= {"n_params": n_params, "flops_per_example": 300 * n_params}
                run |= {"train_examples_seen": 20 * size, "wall_time_s": size / 25}
                for metric in metrics:
                    classes = ("all",) if metric == "loss" else ("micro", "macro", *CLASSES)
                    for cls in classes:
                        err = 0.03 + 4 * n_params**-0.3 + 1.5 * size**-0.35
                        err *= np.exp(rng.normal(0, 0.02))
                        value = err if metric == "loss" else 1 - err
                        cell = {"split": "test", "class": cls, "metric": metric, "value": value}
                        n_pos = 5 + 30 * CLASSES.index(cls) if cls in CLASSES else np.nan
                        rows.append(run | cell | {"n_pos": n_pos})
    for status in ("failed", "diverged", "running"):
        run = {"run_id": f"{status}-run", "status": status, "subset_size": sizes[0]}
        rows.append(run | {"split": "test", "class": "macro", "metric": "auroc", "value": np.nan})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return write_report(
        sweep_table(), out, title="CODE-II data scaling", target=0.9, n_bootstrap=20
    )


def test_report_has_every_section_and_figure(report):
    html, md = report["html"].read_text(), report["markdown"].read_text()
    for heading in (
        "Summary",
        "Warnings",
        "Runs",
        "Fitted laws",
        "Model selection",
        "Per-class laws",
        "Joint law over model size and data",
    ):
        assert f"<h2>{heading}</h2>" in html
        assert f"## {heading}" in md
    assert "<h1>CODE-II data scaling</h1>" in html
    for name in ("scaling", "residuals", "backtest", "forms", "per_class"):
        assert report[name].exists() and report[name].with_suffix(".pdf").exists()
        assert f"]({name}.png)" in md  # linked beside report.md
    assert html.count('src="data:image/png;base64,') == 5  # self-contained
    assert 'src="scaling.png"' not in html


def test_report_lists_runs_laws_and_warnings(report):
    md = report["markdown"].read_text()
    assert "| failed-run | failed |" in md and "| diverged-run | diverged |" in md
    assert "2 runs failed or diverged: not fitted" in md
    assert "1 run still running or pending: not fitted" in md
    assert "classes with fewer than 10 positives on test: 1dAVb" in md
    law_row = "| auroc | macro | saturating | 7 | 14 | "  # 7 sizes, 14 finished runs
    assert sum(line.startswith(law_row) for line in md.splitlines()) == 1
    assert re.search(r"Target macro auroc 0.9 needs subset_size ≈ [\d,]+ \(95% CI", md)
    assert "FLOPs" in md
    assert "Not fitted: the finished runs do not vary both n_params and subset_size." in md


def test_report_model_selection_gives_backtest_reasons_models_and_coverage(report):
    md = report["markdown"].read_text()
    section = md.split("## Model selection")[1].split("## Per-class laws")[0]
    for form in ("power", "saturating", "m3", "m4", "broken", "broken2"):
        assert f"| auroc | macro | {form} |" in section
    assert re.search(r"- auroc \(macro\): \w+ (extrapolated best|is the simplest)", section)
    assert "| chosen: " in section and "| averaged |" in section
    share = re.search(r"Measured coverage of the chosen form's 95% band: (\d+)% of (\d+) runs", md)
    assert share and int(share.group(2)) > 0, section
    assert "| cutoff | runs | inside | coverage |" in section


def test_report_warns_instead_of_fitting_a_curve_that_rises(tmp_path):
    table = sweep_table(metrics=("auroc", "f1"))
    rising = (table["metric"] == "f1") & table["value"].notna()
    table.loc[rising, "value"] = 1 - 0.01 * table.loc[rising, "subset_size"] ** 0.1
    paths = write_report(table, tmp_path, metrics=("auroc", "f1"), n_bootstrap=10)
    md = paths["markdown"].read_text()
    assert "no law for f1 (macro): y does not fall with x: it rises" in md
    assert "| auroc | macro | saturating |" in md


def test_report_explains_fits_it_cannot_make(tmp_path):
    table = sweep_table(sizes=(250, 500, 1000), metrics=("auroc", "loss"))
    paths = write_report(table, tmp_path, metrics=("auroc", "auprc", "loss"), n_bootstrap=10)
    md = paths["markdown"].read_text()
    assert (
        "no law for auroc (macro): the 'saturating' law has 3 parameters and needs at least" in md
    )
    assert "no law for auprc (micro): metric 'auprc' is not in the finished rows" in md
    assert "No law could be fitted (see Warnings)." in md
    assert set(paths) == {"html", "markdown"}  # no figure without a law


def test_report_fits_the_joint_law_when_width_and_data_vary(tmp_path):
    table = sweep_table(sizes=(250, 1000, 4000, 16000), widths=(0.5, 1.0, 2.0), metrics=("auroc",))
    paths = write_report(table, tmp_path, metrics=("auroc",), n_bootstrap=10)
    md = paths["markdown"].read_text()
    assert paths["joint"].exists()
    assert "runs also vary in width; the laws over subset_size pool those runs" in md
    assert "E + A·N^(−alpha) + B·D^(−beta) fitted to the error of auroc (macro)" in md


def test_report_without_finished_runs_says_there_is_nothing_to_fit(tmp_path):
    table = sweep_table()
    paths = write_report(table[table["status"] != "finished"], tmp_path, n_bootstrap=10)
    md = paths["markdown"].read_text()
    assert "- no run has finished: there is nothing to fit yet" in md
    assert "| failed-run | failed |" in md
    assert "No law could be fitted (see Warnings)." in md


CHROMIUM = next(
    (p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))),
    None,
)


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)"
)
def test_report_renders_in_headless_chromium(report, tmp_path):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = report["html"].resolve().as_uri()
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,2000", url],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels.std() > 0.05  # not a blank page
    # Every figure decoded and laid out: the page itself reports each image's natural size.
    probe = tmp_path / "probe.html"
    probe.write_text(report["html"].read_text() + RENDERED_SIZES)
    dom = subprocess.run(
        [CHROMIUM, *flags, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    sizes = re.search(r'<pre id="rendered">([^<]*)</pre>', dom)
    assert sizes, "the probe script did not run"
    images = [tuple(map(int, s.split("x"))) for s in sizes.group(1).split()]
    assert len(images) == report["html"].read_text().count("<img ") >= 4
    assert all(w >= 200 and h >= 150 for w, h in images), images  # decoded PNGs, not broken
    assert "Fitted laws" in dom


RENDERED_SIZES = """
<script>
window.addEventListener("load", () => {
  const pre = document.createElement("pre");
  pre.id = "rendered";
  pre.textContent = [...document.images]
    .map((img) => (img.complete ? img.naturalWidth : 0) + "x" + img.naturalHeight)
    .join(" ");
  document.body.appendChild(pre);
});
</script>
"""
