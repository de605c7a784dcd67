"""Orbax checkpoints of a run: the latest state for resuming, and the best for evaluation.

Orbax writes each checkpoint to a temporary directory and renames it when complete,
so a run killed mid-save resumes from the previous complete checkpoint. Saves are
synchronous: a checkpoint that `save` returned from is on disk.
"""

from __future__ import annotations

from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from scaling.steps import TrainState


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _saveable(state: TrainState) -> TrainState:
    """Typed PRNG keys (dropout streams) as their raw uint32 data."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)


def _restored(raw: TrainState, like: TrainState) -> TrainState:
    return jax.tree.map(
        lambda r, l: jax.random.wrap_key_data(r, impl=jax.random.key_impl(l)) if _is_key(l) else r,
        raw,
        like,
    )


def _abstract(state: TrainState) -> TrainState:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, _saveable(state))


class Checkpoints:
    """`latest/` (every save, two kept) and `best/` (one kept) under a run's ckpt dir."""

    def __init__(self, directory: epath.Path, keep: int = 2) -> None:
        self.latest = ocp.CheckpointManager(
            directory / "latest",
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=False
            ),
        )
        self.best = ocp.CheckpointManager(
            directory / "best",
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1, create=True, enable_async_checkpointing=False
            ),
        )

    def save(self, step: int, state: TrainState, meta: dict[str, Any]) -> None:
        if self.latest.latest_step() == step:
            return
        self.latest.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_saveable(state)), meta=ocp.args.JsonSave(meta)
            ),
        )

    def save_best(self, state: TrainState, step: int) -> None:
        self.best.wait_until_finished()
        for old in self.best.all_steps():
            if old != step:
                self.best.delete(old)
        if self.best.latest_step() != step:
            self.best.save(
                step, args=ocp.args.Composite(state=ocp.args.StandardSave(_saveable(state)))
            )

    def restore_latest(self, like: TrainState) -> tuple[TrainState, dict[str, Any]] | None:
        step = self.latest.latest_step()
        if step is None:
            return None
        out = self.latest.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_abstract(like)), meta=ocp.args.JsonRestore()
            ),
        )
        return _placed(_restored(out["state"], like), like), dict(out["meta"])

    def restore_best(self, like: TrainState) -> TrainState:
        self.best.wait_until_finished()
        step = self.best.latest_step()
        if step is None:
            return like
        out = self.best.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(_abstract(like)))
        )
        return _placed(_restored(out["state"], like), like)

    def close(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()
        self.latest.close()
        self.best.close()


def _placed(state: TrainState, like: TrainState) -> TrainState:
    """Put restored arrays on the same devices/shardings as the live state."""
    return jax.tree.map(
        lambda r, l: jax.device_put(r, l.sharding) if hasattr(l, "sharding") else r, state, like
    )


def restore_state(directory: epath.Path, like: TrainState) -> TrainState:
    """The best (else latest) state of a finished run, for transfer."""
    ckpts = Checkpoints(directory)
    try:
        if ckpts.best.latest_step() is not None:
            return ckpts.restore_best(like)
        restored = ckpts.restore_latest(like)
        if restored is None:
            raise FileNotFoundError(f"no checkpoint under {directory}")
        return restored[0]
    finally:
        ckpts.close()
