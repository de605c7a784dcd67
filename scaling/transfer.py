"""Transfer: start a run from a finished run's weights with a new head for the target classes."""

from __future__ import annotations

from typing import Any

from etils import epath
from flax import nnx

from scaling import store
from scaling.checkpoint import restore_state
from scaling.config import ModelConfig, RunConfig, get_value, override, parse_overrides
from scaling.models import ResNet1D, init_model
from scaling.steps import make_steps


class TransferError(ValueError):
    """The pretrained run cannot be used for this target."""


def resolve_pretrained(pretrained: str, store_root: epath.Path) -> epath.Path:
    """The run dir named by `transfer.pretrained` (a path, or `<sweep>:key=value,...`)."""
    if not pretrained:
        raise TransferError("transfer.pretrained must name a finished run (path or selector)")
    if ":" in pretrained and "://" not in pretrained and not pretrained.startswith("/"):
        sweep, _, query = pretrained.partition(":")
        wanted = parse_overrides([q for q in query.split(",") if q])
        matches = [
            s.path
            for s in store.scan(store_root, sweep)
            if s.status == store.FINISHED and _matches(store.load_config(s.path), wanted)
        ]
        if len(matches) != 1:
            raise TransferError(
                f"transfer.pretrained '{pretrained}' matches {len(matches)} finished runs of "
                f"sweep '{sweep}' in {store_root} (need exactly one); run that sweep first"
            )
        return matches[0]
    path = epath.Path(pretrained)
    return path if path.is_absolute() else store_root / path


def _matches(cfg: RunConfig, wanted: dict[str, str]) -> bool:
    """Whether `cfg` has each wanted value (given as strings, compared after coercion)."""
    return all(get_value(cfg, k) == get_value(override(cfg, {k: v}), k) for k, v in wanted.items())


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
