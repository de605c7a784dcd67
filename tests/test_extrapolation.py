"""The extrapolation benchmark on a few of the vision learning curves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import extrapolation

DATA = extrapolation.DATA / "benchmark.vision.csv"


@pytest.mark.slow
@pytest.mark.skipif(not DATA.exists(), reason=f"no learning-curve data at {DATA}")
def test_benchmark_runs_on_three_vision_curves_and_reports_its_figures(capsys, monkeypatch):
    monkeypatch.setattr(extrapolation, "one_curve_seconds", lambda: {"seconds": 0.0})
    assert extrapolation.main(["--curves", "3", "--n-bootstrap", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["curve", "power", "saturating"]
    assert [line.split()[0] for line in lines[1:4]] == ["bird_5", "bird_10", "bird_25"]
    figures = {f["figure"]: f for f in map(json.loads, lines[4:])}
    assert list(figures) == [
        "median_ratio",
        "share_at_or_below_best",
        "band_coverage",
        "time",
        "one_curve",
    ]
    ratio, share, coverage = (figures[k] for k in list(figures)[:3])
    assert ratio["curves"] == 3 and min(ratio["references"].values()) == 1.0
    for method in ("auto", "average", "power", "m4"):
        assert 0.2 < ratio[method] < 10, ratio
        assert 0.0 <= share[method] <= 1.0
    assert ratio["auto"] < ratio["power"]  # a power law without a floor extrapolates badly
    assert coverage["points"] > 1000 and 0.3 < coverage["average"] <= 1.0
