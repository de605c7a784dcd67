"""Transfer: start a run from a finished run's weights with a new head for the target classes."""

from __future__ import annotations

import itertools
import os
import tempfile
from typing import Any

import jax
import numpy as np
import pandas as pd
from etils import epath
from flax import nnx

from scaling import store
from scaling.checkpoint import restore_state
from scaling.config import ModelConfig, matches, parse_overrides
from scaling.data import ExamSet, Split, Splits, iterate_batches
from scaling.data.preprocess import Preprocessing
from scaling.errors import ScalingError
from scaling.models import ResNet1D, init_model
from scaling.steps import make_steps


class TransferError(ScalingError):
    """The pretrained run cannot be used for this target."""


def resolve_pretrained(pretrained: str, store_root: epath.Path) -> epath.Path:
    """The run dir named by `transfer.pretrained` (a path, or `<sweep>:key=value,...`)."""
    if not pretrained:
        raise TransferError("transfer.pretrained must name a finished run (path or selector)")
    if ":" in pretrained and "://" not in pretrained and not pretrained.startswith("/"):
        sweep, _, query = pretrained.partition(":")
        wanted = parse_overrides([q for q in query.split(",") if q])
        found = [
            s.path
            for s in store.scan(store_root, sweep)
            if s.status == store.FINISHED and matches(store.load_config(s.path), wanted)
        ]
        if len(found) != 1:
            raise TransferError(
                f"transfer.pretrained '{pretrained}' matches {len(found)} finished runs of "
                f"sweep '{sweep}' in {store_root} (need exactly one); run that sweep first"
            )
        return found[0]
    path = epath.Path(pretrained)
    return path if path.is_absolute() else store_root / path


def load_pretrained(
    path: epath.Path, *, n_leads: int, n_classes: int, length: int, seed: int, dtype: Any
) -> tuple[ResNet1D, ModelConfig]:
    """The pretrained run's model (best checkpoint) with a fresh `n_classes` head."""
    if not (path / "result.json").exists():
        raise TransferError(f"pretrained run {path} is not finished (no result.json)")
    pre = store.load_config(path)
    pre_leads, pre_length = len(pre.data.leads), pre.data.length
    if (pre_leads, pre_length) != (n_leads, length):
        raise TransferError(
            f"pretrained run {path.name} takes {pre_leads} leads x {pre_length} samples; "
            f"the target data give {n_leads} x {length}: set data.leads / data.length to match"
        )
    n_pre = len(store.read_json(path / "result.json")["n_pos"]["test"])
    model = init_model(
        pre.model, n_leads=n_leads, n_classes=n_pre, length=length, seed=seed, dtype=dtype
    )
    like = make_steps(
        model, optimizer=pre.train.optimizer, weight_decay=pre.train.weight_decay
    ).init(model)
    state = restore_state(path / "ckpt", like)
    nnx.update(model, state["params"], state["other"])
    model.head = nnx.Linear(model.num_features, n_classes, rngs=nnx.Rngs(seed))
    return model, pre.model


# ---------------------------------------------------------------------------
# Linear probe: the frozen backbone's features are computed once


FEATURE_LEAD = "feature"


class Probe(nnx.Module):
    """A linear head on precomputed backbone features: the model a linear probe trains."""

    def __init__(self, head: nnx.Linear) -> None:
        self.head = head

    def features(self, x: jax.Array, *, train: bool) -> jax.Array:
        return x.reshape(x.shape[0], -1)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        return self.head(self.features(x, train=train))


class _Features:
    """A `SignalReader` over features in an unlinked file on local disk (memory-mapped, so a
    CODE-II-size target's features need not fit in memory; the file goes with the reader)."""

    def __init__(self, n: int, width: int) -> None:
        fd, name = tempfile.mkstemp(prefix="scaling-features-", suffix=".npy")
        os.close(fd)
        self.values = np.lib.format.open_memmap(name, mode="w+", dtype=np.float32, shape=(n, width))
        os.unlink(name)

    def read(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.values[rows])[:, :, None]  # (rows, features, one "lead")


def probe_features(
    model: ResNet1D, splits: Splits, prep: Preprocessing, batch_size: int
) -> tuple[Probe, Splits]:
    """The features of the train / val / test exams through the frozen backbone (eval mode),
    as splits of the same exams whose signals are those features (read without
    preprocessing), and the probe that trains on them (the model's head)."""
    steps = make_steps(model, optimizer="adam", weight_decay=0.0)
    state = steps.init(model)
    parts = [splits.train, splits.val, splits.test]
    sizes = np.cumsum([0] + [len(p) for p in parts])
    features: _Features | None = None
    for part, start in zip(parts, sizes, strict=False):
        at = int(start)
        for x, _ in iterate_batches(part, prep, batch_size):
            f = steps.features(state, x, batch_size)
            if features is None:
                features = _Features(int(sizes[-1]), f.shape[1])
            features.values[at : at + len(f)] = f
            at += len(f)
    exams = ExamSet(
        exam_ids=np.concatenate([p.exams.exam_ids[p.rows] for p in parts]),
        patient_ids=np.concatenate([p.patients for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        class_names=splits.class_names,
        sample_rate=1.0,
        lead_names=(FEATURE_LEAD,),
        reader=features,
        info=pd.DataFrame(index=range(sizes[-1])),
        source=f"features of {splits.train.exams.source}",
    )
    train, val, test = (Split(exams, np.arange(a, b)) for a, b in itertools.pairwise(sizes))
    return Probe(model.head), Splits(train, val, test, train)
