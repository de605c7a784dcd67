"""Transfer: start a run from a finished run's weights with a new head for the target classes."""

from __future__ import annotations

from typing import Any

from etils import epath
from flax import nnx

from scaling import store
from scaling.checkpoint import restore_state
from scaling.config import ModelConfig
from scaling.models import ResNet1D, init_model
from scaling.steps import make_steps


class TransferError(ValueError):
    """The pretrained run cannot be used for this target."""


def load_pretrained(
    run_dir: str, *, n_leads: int, n_classes: int, length: int, seed: int, dtype: Any
) -> tuple[ResNet1D, ModelConfig]:
    """The pretrained run's model (best checkpoint) with a fresh `n_classes` head."""
    if not run_dir:
        raise TransferError("transfer.pretrained must name the run dir of a finished run")
    path = epath.Path(run_dir)
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
