"""The learning-curve loaders of the extrapolation benchmark and their fixed halves."""

from __future__ import annotations

import csv
import hashlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import curves
from curves import Curve

COLUMNS = "openmlid,learner,size_train,size_test,outer_seed,inner_seed,traintime,"
COLUMNS += "score_train,score_valid,score_test"
SVC, TREE = "SVC_linear", "sklearn.tree.DecisionTreeClassifier"
OFFSETS = (0.04, -0.01, -0.02, -0.01)  # error offsets of the four seeds: they average to 0


def anchor(k: int) -> int:
    return int(np.round(16 * np.sqrt(2) ** k))  # 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512


def base(k: int) -> float:
    return 0.6 * 0.8**k


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_lcdb(path: Path) -> Path:
    """A small LCDB-layout CSV: 3 datasets × 2 learners × 2 outer × 2 inner seeds."""
    spans = {  # (openmlid, learner): anchors k = 0 .. K
        (1000, TREE): 9,  # file order, not sorted order, is kept
        (1000, SVC): 9,  # max 362: 91 > 90.5 is held out, 5 fit anchors
        (3, SVC): 8,  # mean error 0 at a held-out anchor: dropped
        (42, SVC): 8,  # max 256: fit ≤ 64 is exactly 5 anchors (64 itself included)
        (42, TREE): 10,  # one seed has zero error at an anchor, the mean does not: kept
        (3, TREE): 7,  # max 181: only 4 anchors ≤ 45.25: dropped
    }
    rows = []
    for seed, offset in enumerate(OFFSETS):  # seeds outermost: curves are not contiguous
        outer, inner = divmod(seed, 2)
        for (openmlid, learner), top in spans.items():
            for k in range(top, -1, -1):  # anchors written largest first
                error = base(k) + offset
                if (openmlid, learner) == (42, TREE) and k == 3:
                    error = (0.0, 0.2, 0.3, 0.1)[seed]
                if (openmlid, learner) == (3, SVC) and k == 8:
                    error = 0.0
                rows.append((openmlid, learner, anchor(k), outer, inner, error))
    rows.append((42, SVC, anchor(1), 1, 2, 0.9))  # a fifth seed at one anchor
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS.split(","))
        for openmlid, learner, size, outer, inner, error in rows:
            score = 1.0 - error
            out.writerow([openmlid, learner, size, 50, outer, inner, 0.01, 1.0, score - 0.1, score])
    return path


def test_lcdb_means_over_seeds_splits_at_a_quarter_of_the_largest_anchor_and_drops(tmp_path):
    found = curves.lcdb(write_lcdb(tmp_path / "database-accuracy.csv"))
    names = [c.name for c in found]
    assert names == [f"1000 {TREE}", f"1000 {SVC}", f"42 {SVC}", f"42 {TREE}"]
    assert [c.dataset for c in found] == ["1000", "1000", "42", "42"]
    by_name = dict(zip(names, found, strict=True))

    svc = by_name[f"42 {SVC}"]
    assert svc.x.tolist() == [16, 23, 32, 45, 64] and svc.x.dtype == float
    assert svc.x_test.tolist() == [91, 128, 181, 256]
    expected = [base(k) for k in range(9)]
    expected[1] = (4 * base(1) + 0.9) / 5  # the mean of all five rows, not of the outer means
    np.testing.assert_allclose(np.r_[svc.y, svc.y_test], expected, rtol=1e-12)

    tree = by_name[f"42 {TREE}"]
    assert tree.x.tolist() == [16, 23, 32, 45, 64, 91, 128]
    assert tree.x_test.tolist() == [181, 256, 362, 512]
    assert tree.y[3] == pytest.approx(0.15)

    late = by_name[f"1000 {SVC}"]
    assert late.x.tolist() == [16, 23, 32, 45, 64]
    assert late.x_test.tolist() == [91, 128, 181, 256, 362]
    np.testing.assert_allclose(late.y_test, [base(k) for k in range(5, 10)], rtol=1e-12)

    assert [c.name for c in curves.lcdb(tmp_path / "database-accuracy.csv", limit=2)] == [
        n for n in names if n in sorted(names, key=sha)[:2]
    ]


def test_lcdb_csv_names_the_extra_when_lcdb_is_missing(monkeypatch):
    monkeypatch.setattr(curves.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit, match=r'pip install -e "\.\[curves\]"'):
        curves.lcdb_csv()
    with pytest.raises(ValueError, match="metric"):
        curves.lcdb_csv("rmse")


def make(name: str, dataset: str) -> Curve:
    return Curve(name, dataset, np.arange(1.0, 6.0), np.ones(5), np.array([9.0]), np.ones(1))


def test_halves_split_by_dataset_in_digest_order_and_keep_curve_order():
    sets = ["alpha", "beta", "gamma"]
    found = [make(f"{d} {i}", d) for i in range(3) for d in sets]
    split = curves.halves(found)
    tune = set(sorted(sets, key=sha)[: math.ceil(len(sets) / 2)])
    assert len(tune) == 2
    assert split["tune"] == [c for c in found if c.dataset in tune]
    assert split["held-out"] == [c for c in found if c.dataset not in tune]
    assert curves.halves(found[::-1])["tune"] == split["tune"][::-1]  # by dataset, not position


def test_sample_takes_the_first_names_by_digest_in_the_original_order():
    found = [make(f"curve {i}", "d") for i in range(20)]
    chosen = curves.sample(found, 5)
    first = sorted((c.name for c in found), key=sha)[:5]
    assert [c.name for c in chosen] == [c.name for c in found if c.name in first]
    assert [c.name for c in chosen] != [c.name for c in found[:5]]
    assert curves.sample(found, 50) == found and curves.sample(found, 0) == []


def test_a_curve_rejects_held_out_points_inside_the_fit_range():
    with pytest.raises(ValueError, match="held-out"):
        Curve("c", "d", np.array([1.0, 4.0]), np.ones(2), np.array([3.0]), np.ones(1))


@pytest.mark.skipif(not curves.VISION.exists(), reason=f"no learning-curve data at {curves.VISION}")
def test_vision_gives_72_curves_of_4_datasets_split_two_and_two():
    found = curves.vision()
    assert len(found) == 72
    assert [c.name for c in found[:2]] == ["bird_5 MiX/B/16", "bird_10 MiX/B/16"]
    assert {c.dataset for c in found} == {"bird", "inet", "c", "cal"}
    assert all(c.x.size >= 10 and c.x_test.size >= 3 for c in found)
    split = curves.halves(found)
    tune, held = ({c.dataset for c in split[k]} for k in ("tune", "held-out"))
    assert len(tune) == len(held) == 2 and not tune & held
    assert len(split["tune"]) + len(split["held-out"]) == 72
