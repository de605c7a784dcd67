"""Learning curves from two development sets, in one shape, for the extrapolation benchmark.

- `vision()`: the 72 image-classification curves of Alabdulmohsin, Neyshabur & Zhai
  (NeurIPS 2022), one per (Task, Model); fit rows are Training = 1, held-out rows
  Training = 0. The dataset of a curve is its task without the shot count (`bird_5` → `bird`).
- `lcdb()`: LCDB 1.0 (Mohr et al.), as shipped in the PyPI package `lcdb==0.1.0`
  (`pip install -e ".[curves]"`), one curve per (openmlid, learner). Protocol, fixed before
  looking at any result: error = 1 − score_test (test-fold accuracy); y at an anchor = mean
  over all rows (outer and inner seeds) at that size_train; x = size_train; fit points are the
  anchors with x ≤ max(x)/4, held-out points those with x > max(x)/4. A curve is kept only with
  ≥ 5 fit anchors, ≥ 1 held-out anchor and every mean error > 0 and finite.

`halves()` splits a set into two fixed halves by dataset, never by curve: every rule and
constant of the law code is chosen on "tune", and figures are reported on "held-out".
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

VISION = (
    Path(__file__).resolve().parents[2] / "shared/benchmarks/learning_curves/benchmark.vision.csv"
)
LCDB_COLUMNS = ["openmlid", "learner", "size_train", "score_test"]
LCDB_METRICS = ("accuracy", "logloss", "auc", "f1")
MIN_FIT = 5  # fit anchors an LCDB curve needs
MIN_TEST = 1  # held-out anchors an LCDB curve needs
FIT_SHARE = 4  # fit anchors: x ≤ max(x) / FIT_SHARE


@dataclass(frozen=True, eq=False)
class Curve:
    """One learning curve: fit points (x, y) and held-out points (x_test, y_test).

    Both parts are sorted by x, and every held-out x is larger than every fit x.
    """

    name: str
    dataset: str
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self) -> None:
        for field in ("x", "y", "x_test", "y_test"):
            object.__setattr__(self, field, np.asarray(getattr(self, field), dtype=float))
        if self.x.shape != self.y.shape or self.x_test.shape != self.y_test.shape:
            raise ValueError(f"{self.name}: x and y differ in shape")
        if np.any(np.diff(self.x) < 0) or np.any(np.diff(self.x_test) < 0):
            raise ValueError(f"{self.name}: points are not sorted by x")
        if self.x.size and self.x_test.size and self.x_test[0] <= self.x[-1]:
            raise ValueError(f"{self.name}: a held-out x is not larger than every fit x")


def vision(path: Path = VISION) -> list[Curve]:
    """The 72 vision curves, in file order, named f"{task} {model}", each sorted by x."""
    table = pd.read_csv(path).rename(columns={"Seen Examples": "x", "Loss": "y"})
    out = []
    for (task, model), rows in table.groupby(["Task", "Model"], sort=False):
        rows = rows.sort_values("x")
        fit, test = rows[rows["Training"] == 1], rows[rows["Training"] == 0]
        out.append(
            Curve(
                name=f"{task} {model}",
                dataset=str(task).rsplit("_", 1)[0],
                x=fit["x"].to_numpy(float),
                y=fit["y"].to_numpy(float),
                x_test=test["x"].to_numpy(float),
                y_test=test["y"].to_numpy(float),
            )
        )
    return out


def lcdb_csv(metric: str = "accuracy") -> Path:
    """The CSV of one metric that the `lcdb` package ships, found without importing `lcdb`."""
    if metric not in LCDB_METRICS:
        raise ValueError(f"metric {metric!r} is not one of {', '.join(LCDB_METRICS)}")
    spec = importlib.util.find_spec("lcdb")  # imports nothing: `import lcdb` needs openml
    if spec is None:
        raise SystemExit('LCDB 1.0 is not installed; run: pip install -e ".[curves]"')
    if spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
    else:
        folder = Path(str(spec.origin)).parent
    path = folder / f"database-{metric}.csv"
    if not path.is_file():
        raise SystemExit(f'no {path.name} in {folder}; run: pip install -e ".[curves]"')
    return path


def lcdb(path: Path | None = None, limit: int | None = None) -> list[Curve]:
    """LCDB 1.0 accuracy curves under the protocol above, in order of first appearance.

    `path` defaults to the packaged `database-accuracy.csv`; `limit` keeps a fixed `sample`.
    """
    path = lcdb_csv() if path is None else path
    table = pd.read_csv(path, usecols=LCDB_COLUMNS)
    ids, id_names = pd.factorize(table["openmlid"])
    learners, learner_names = pd.factorize(table["learner"])
    if (ids < 0).any() or (learners < 0).any():
        raise ValueError(f"{path}: rows without an openmlid or a learner")
    codes, pairs = pd.factorize(ids * len(learner_names) + learners)  # first-appearance order
    means = (
        pd.DataFrame({"curve": codes, "x": table["size_train"], "y": 1.0 - table["score_test"]})
        .groupby(["curve", "x"], sort=True)["y"]
        .mean()
    )
    curve = means.index.get_level_values("curve").to_numpy()
    xs = means.index.get_level_values("x").to_numpy(dtype=float)
    ys = means.to_numpy(dtype=float)
    bounds = np.flatnonzero(np.diff(curve)) + 1
    out: list[Curve] = []
    if not curve.size:
        return out
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(curve)], strict=True):
        x, y = xs[start:stop], ys[start:stop]
        n_fit = int(np.count_nonzero(x <= x[-1] / FIT_SHARE))  # x is sorted: a prefix
        if n_fit < MIN_FIT or x.size - n_fit < MIN_TEST:
            continue
        if not (np.all(np.isfinite(y)) and np.all(y > 0)):
            continue
        openmlid, learner = divmod(int(pairs[curve[start]]), len(learner_names))
        openmlid, learner = id_names[openmlid], learner_names[learner]
        out.append(
            Curve(
                name=f"{openmlid} {learner}",
                dataset=str(openmlid),
                x=x[:n_fit],
                y=y[:n_fit],
                x_test=x[n_fit:],
                y_test=y[n_fit:],
            )
        )
    return out if limit is None else sample(out, limit)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def halves(curves: list[Curve]) -> dict[str, list[Curve]]:
    """A fixed split by dataset, never by curve: {"tune": [...], "held-out": [...]}.

    The distinct datasets are ordered by the SHA-256 hex digest of their name; the first
    ceil(n/2) form "tune", the rest "held-out". Curves keep their input order in each half.
    Every rule and constant of the law code is chosen on "tune"; results are reported on
    "held-out", whose curves must not inform any choice.
    """
    datasets = sorted({c.dataset for c in curves}, key=_digest)
    tune = set(datasets[: math.ceil(len(datasets) / 2)])
    return {
        "tune": [c for c in curves if c.dataset in tune],
        "held-out": [c for c in curves if c.dataset not in tune],
    }


def sample(curves: list[Curve], limit: int) -> list[Curve]:
    """A fixed sample not tuned to results: the `limit` curves first by SHA-256 of their name,
    in their original order."""
    if limit < 0:
        raise ValueError(f"limit must be ≥ 0, not {limit}")
    chosen = sorted(range(len(curves)), key=lambda i: _digest(curves[i].name))[:limit]
    return [curves[i] for i in sorted(chosen)]
