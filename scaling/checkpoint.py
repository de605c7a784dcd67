"""Orbax checkpoints of a run: the latest state for resuming, and the best for evaluation.

Orbax writes each checkpoint to a temporary directory and renames it when complete,
so a run killed mid-save resumes from the previous complete checkpoint. Saves are
synchronous: a checkpoint that `save` returned from is on disk.

The state is saved packed: its leaves concatenated into one flat array per dtype (`packed`),
with their key paths, dtypes and shapes beside it (`layout`), because Orbax's cost grows with
the number of arrays (about 1.5 ms each on a local disk), not their size. Checkpoints written
with one array per leaf (`state`) are still restored.

A run in a bucket (`s3://`, `gs://`) checkpoints to a local scratch directory, which is
mirrored through fsspec: each new step is uploaded whole, then `committed.json` (one atomic
PUT) names the steps a resume may use, then steps no longer kept are deleted. A resume
downloads only the committed steps, so an upload cut short is never read. (Orbax cannot
write `s3://` itself: it rewrites the URL into a relative path.)
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from scaling import store
from scaling.steps import TrainState

log = logging.getLogger(__name__)


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


def _leaves(state: TrainState) -> list[tuple[str, Any]]:
    """The saveable leaves of `state` (or of its abstract shapes) with their key paths."""
    flat, _ = jax.tree_util.tree_flatten_with_path(jax.eval_shape(_saveable, state))
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in flat]


def _pack(state: TrainState) -> tuple[dict[str, np.ndarray], list[list[Any]]]:
    """One flat host array per dtype, and the layout of the leaves packed in them."""
    groups: dict[str, list[np.ndarray]] = {}
    layout = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(_saveable(state))[0]:
        dtype = np.dtype(leaf.dtype).name
        groups.setdefault(dtype, []).append(np.asarray(leaf).ravel())
        layout.append([jax.tree_util.keystr(path), dtype, list(leaf.shape)])
    return {dtype: np.concatenate(parts) for dtype, parts in groups.items()}, layout


def _unpacked(packed: dict[str, np.ndarray], layout: list[list[Any]]) -> dict[str, np.ndarray]:
    """The arrays of a packed checkpoint by key path, in the order they were packed."""
    offsets = dict.fromkeys(packed, 0)
    arrays = {}
    for name, dtype, shape in layout:
        size = math.prod(shape)
        arrays[name] = np.asarray(packed[dtype][offsets[dtype] : offsets[dtype] + size])
        arrays[name] = arrays[name].reshape(shape)
        offsets[dtype] += size
    return arrays


def _packed_abstract(like: TrainState) -> dict[str, np.ndarray]:
    sizes: dict[str, int] = {}
    for _, leaf in _leaves(like):
        dtype = np.dtype(leaf.dtype).name
        sizes[dtype] = sizes.get(dtype, 0) + leaf.size
    return {dtype: np.zeros(size, jnp.dtype(dtype)) for dtype, size in sizes.items()}


def _as_state(out: Any, like: TrainState) -> TrainState:
    """A restored checkpoint (packed, or one array per leaf) as a state shaped like `like`."""
    if "packed" not in out:
        return _restored(out["state"], like)
    arrays = _unpacked(out["packed"], out["layout"])
    expected = [name for name, _ in _leaves(like)]
    if list(arrays) != expected:
        raise ValueError("checkpoint layout does not match the model's state")
    raw = jax.tree.unflatten(jax.tree.structure(like), list(arrays.values()))
    return _restored(raw, like)


class Checkpoints:
    """`latest/` (every save, two kept) and `best/` (one kept) under a run's ckpt dir."""

    def __init__(self, directory: epath.Path, keep: int = 2) -> None:
        self.mirror = _Mirror(directory) if store.is_remote(directory) else None
        if self.mirror:
            directory = self.mirror.local
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

    def _sync(self) -> None:
        if self.mirror:
            self.mirror.upload({"latest": self.latest.all_steps(), "best": self.best.all_steps()})

    def save(self, step: int, state: TrainState, meta: dict[str, Any]) -> None:
        if self.latest.latest_step() == step:
            return
        self.latest.save(step, args=_save_args(state, meta=ocp.args.JsonSave(meta)))
        self._sync()

    def save_best(self, state: TrainState, step: int) -> None:
        self.best.wait_until_finished()
        for old in self.best.all_steps():
            if old != step:
                self.best.delete(old)
        if self.best.latest_step() != step:
            self.best.save(step, args=_save_args(state))
            self._sync()

    def restore_latest(self, like: TrainState) -> tuple[TrainState, dict[str, Any]] | None:
        """The newest readable checkpoint (state, meta), or None to start from scratch.

        A checkpoint damaged after it was committed (files removed or truncated) is
        deleted and the one before it is tried, so a resume never loads garbage.
        """
        out = _restore_newest(self.latest, like, meta=ocp.args.JsonRestore())
        if out is None:
            return None
        return _placed(_as_state(out, like), like), dict(out["meta"])

    def restore_best(self, like: TrainState) -> TrainState:
        """The best state; `like` itself when there is none (or it is damaged)."""
        self.best.wait_until_finished()
        out = _restore_newest(self.best, like)
        return like if out is None else _placed(_as_state(out, like), like)

    def close(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()
        self.latest.close()
        self.best.close()
        if self.mirror:
            shutil.rmtree(self.mirror.local, ignore_errors=True)


class _Mirror:
    """A bucket checkpoint directory mirrored in a local scratch directory (see above)."""

    def __init__(self, remote: epath.Path) -> None:
        self.fs, self.root = store.filesystem(remote)
        self.local = epath.Path(tempfile.mkdtemp(prefix="scaling-ckpt-"))
        self.committed = self._read()
        for kind, steps in self.committed.items():
            for step in steps:
                self.fs.get(f"{self.root}/{kind}/{step}", str(self.local / kind / str(step)),
                            recursive=True)  # fmt: skip

    def _read(self) -> dict[str, list[int]]:
        try:
            return json.loads(self.fs.cat_file(f"{self.root}/committed.json"))
        except FileNotFoundError:
            return {"latest": [], "best": []}

    def upload(self, steps: dict[str, list[int]]) -> None:
        """Upload new steps, commit the list of kept ones, then delete the others."""
        for kind, kept in steps.items():
            for step in set(kept) - set(self.committed[kind]):
                target = f"{self.root}/{kind}/{step}"
                if self.fs.exists(target):  # an upload cut short, never committed
                    self.fs.rm(target, recursive=True)
                self.fs.put(str(self.local / kind / str(step)), target, recursive=True)
        self.fs.pipe_file(f"{self.root}/committed.json", json.dumps(steps).encode())
        for kind, kept in steps.items():
            for step in set(self.committed[kind]) - set(kept):
                self.fs.rm(f"{self.root}/{kind}/{step}", recursive=True)
        self.committed = {kind: list(kept) for kind, kept in steps.items()}


def _save_args(state: TrainState, **items: Any) -> ocp.args.Composite:
    packed, layout = _pack(state)
    return ocp.args.Composite(
        packed=ocp.args.StandardSave(packed), layout=ocp.args.JsonSave(layout), **items
    )


def _restore_args(step_dir: epath.Path, like: TrainState, **items: Any) -> ocp.args.Composite:
    if (step_dir / "state").exists():  # written before checkpoints were packed
        return ocp.args.Composite(state=ocp.args.StandardRestore(_abstract(like)), **items)
    return ocp.args.Composite(
        packed=ocp.args.StandardRestore(_packed_abstract(like)),
        layout=ocp.args.JsonRestore(),
        **items,
    )


def _restore_newest(manager: ocp.CheckpointManager, like: TrainState, **items: Any) -> Any:
    """Restore the newest step that reads back whole; damaged newer steps are deleted."""
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            args = _restore_args(epath.Path(manager.directory) / str(step), like, **items)
            return manager.restore(step, args=args)
        except Exception as e:  # Orbax and TensorStore raise many kinds for damaged files
            log.warning("checkpoint %s/%d is damaged (%s); deleting it", manager.directory, step, e)
            manager.delete(step)
    return None


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


def read_arrays(directory: epath.Path) -> dict[str, np.ndarray]:
    """The arrays of a run's best (else latest) checkpoint by key path, without a model.

    For inspecting a checkpoint, e.g. `read_arrays(run / "ckpt")["['params']['stem']..."]`.
    """
    ckpts = Checkpoints(directory)
    try:
        manager = ckpts.best if ckpts.best.latest_step() is not None else ckpts.latest
        step = manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {directory}")
        args = ocp.args.Composite(packed=ocp.args.StandardRestore(), layout=ocp.args.JsonRestore())
        out = manager.restore(step, args=args)
        return _unpacked(out["packed"], out["layout"])
    finally:
        ckpts.close()
