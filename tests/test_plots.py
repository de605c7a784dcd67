"""Figures of fitted laws: each is written as a PNG and a PDF of the expected size."""

from __future__ import annotations

import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from scaling import plots
from scaling.laws import fit_metric

CLASSES = ("1dAVb", "RBBB", "AF", "ST")


def tidy_table(widths=(1.0,), seed: int = 0) -> pd.DataFrame:
    """Finished runs whose errors follow E + A·N^−0.3 + B·D^−0.35 for every metric and class."""
    rng = np.random.default_rng(seed)
    rows = []
    for width in widths:
        n_params = 6.4e6 * width**2
        for size in (250, 500, 1000, 2000, 4000, 8000, 16000):
            for data_seed in (0, 1):
                run = {"run_id": f"w{width}-s{size}-{data_seed}", "status": "finished"}
                run |= {"subset_size": size, "n_params": n_params, "data_seed": data_seed}
                run |= {"flops_per_example": 300 * n_params, "train_examples_seen": 20 * size}
                for metric in ("auroc", "auprc", "f1", "loss"):
                    classes = ("all",) if metric == "loss" else ("micro", "macro", *CLASSES)
                    for cls in classes:
                        err = 0.03 + 40 * n_params**-0.3 + 1.5 * size**-0.35
                        err *= np.exp(rng.normal(0, 0.02))
                        value = err if metric == "loss" else 1 - err
                        cell = {"split": "test", "class": cls, "metric": metric, "value": value}
                        rows.append(run | cell)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return tidy_table()


def summary_fits(table):
    fits = [
        fit_metric(table, metric=m, cls=c, n_bootstrap=30)
        for m in ("auroc", "auprc", "f1")
        for c in ("micro", "macro")
    ]
    return [*fits, fit_metric(table, metric="loss", cls="all", n_bootstrap=30)]


def assert_written(paths, out, panels: tuple[int, int]):
    """PNG and PDF with out's stem, non-empty; the PNG is PANEL inches per panel at DPI."""
    png, pdf = paths
    assert (png, pdf) == (out.with_suffix(".png"), out.with_suffix(".pdf"))
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000
    image = matplotlib.image.imread(png)
    columns, rows = panels
    assert image.shape[1] == round(columns * plots.PANEL[0] * plots.DPI)
    assert image.shape[0] >= round(rows * plots.PANEL[1] * plots.DPI) - 1
    assert image[..., :3].std() > 0.05  # something is drawn


def test_scaling_curves_one_panel_per_metric(table, tmp_path):
    rc_before = dict(matplotlib.rcParams)
    out = tmp_path / "figures" / "scaling"
    assert_written(plots.plot_scaling(summary_fits(table), out), out, (4, 1))
    assert dict(matplotlib.rcParams) == rc_before  # the paper style stays inside the figure


def test_per_class_small_multiples(table, tmp_path):
    fits = [fit_metric(table, cls=c, n_bootstrap=30) for c in CLASSES]
    out = tmp_path / "per_class"
    assert_written(plots.plot_per_class(fits, out), out, (3, 2))


def test_residuals_and_forms(table, tmp_path):
    out = tmp_path / "residuals"
    assert_written(plots.plot_residuals(summary_fits(table), out), out, (1, 1))
    forms = [fit_metric(table, form=f, n_bootstrap=0) for f in ("power", "saturating", "broken")]
    out = tmp_path / "forms"
    assert_written(plots.plot_forms(forms, out), out, (1, 1))


def test_joint_law_contours_with_the_compute_frontier(tmp_path):
    table = tidy_table(widths=(0.25, 0.5, 1.0, 2.0))
    joint = fit_metric(table, x=("n_params", "subset_size"), form="joint", n_bootstrap=30)
    out = tmp_path / "joint"
    assert_written(plots.plot_joint(joint, out, flops_per_nd=1000.0), out, (1, 1))
