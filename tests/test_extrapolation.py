"""The extrapolation benchmark on a few of the vision learning curves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import curves
import extrapolation


@pytest.mark.slow
@pytest.mark.skipif(not curves.VISION.exists(), reason=f"no learning-curve data at {curves.VISION}")
def test_benchmark_runs_on_three_vision_curves_and_reports_its_figures(capsys, monkeypatch):
    monkeypatch.setattr(extrapolation, "one_curve_seconds", lambda: {"seconds": 0.0})
    monkeypatch.setattr(extrapolation.references, "ROUNDS", 300)  # M2/M4 stopped sooner
    argv = ["--sets", "vision", "--curves", "3", "--n-bootstrap", "20", "--jobs", "1"]
    assert extrapolation.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["curve", "half", "power", "saturating"]
    assert lines[0].split()[-3:] == ["M4", "BNSL", "chosen"]
    assert [line.split()[0] for line in lines[1:4]] == ["bird_5", "bird_10", "bird_25"]
    assert {line.split()[2] for line in lines[1:4]} == {"held-out"}  # halves of the whole set
    figures = [json.loads(line) for line in lines[4:]]
    assert [f["figure"] for f in figures] == [
        "median_ratio",
        "share_at_or_below_best",
        "same_form",
        "band_coverage",
        "time",
        "one_curve",
    ]
    ratio, share, same, coverage = figures[:4]
    assert ratio["set"] == "vision" and ratio["half"] == "held-out" and ratio["curves"] == 3
    assert min(ratio["references"].values()) >= 1.0  # none beats the best of them
    for method in ("auto", "average", "power", "m4"):
        assert 0.2 < ratio[method] < 10, ratio
    assert ratio["auto"] < ratio["power"]  # a power law without a floor extrapolates badly
    assert share["curves"] == 3 and share["power"] < 1.0
    assert set(same) >= {"power/M1", "saturating/M2", "m3/M3", "m4/M4", "broken/BNSL"}
    assert coverage["points"] > 1000 and 0.3 < coverage["average"] <= 1.0
