"""Compiled train and predict steps, data parallel over all local devices.

The model is split once into a static graph and array state; the steps are pure
functions of that state, jitted once per (graph, optimizer) and reused by every
run in the process (the persistent compilation cache shares them across processes).
The batch is sharded over a 1-D device mesh, parameters are replicated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

TrainState = dict[str, Any]  # {"params", "other", "opt"}: a pytree of arrays


def _optimizer(name: str, weight_decay: float) -> optax.GradientTransformation:
    """Adam(W) direction; the learning rate is applied by the step so it can change freely."""
    if name == "adam":
        return optax.scale_by_adam()
    if name == "adamw":
        return optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(weight_decay))
    raise ValueError(f"train.optimizer must be adam or adamw, got {name!r}")


def bce_with_logits(logits: jax.Array, labels: jax.Array, pos_weight: jax.Array) -> jax.Array:
    """Mean binary cross-entropy; positives of class c weighted by pos_weight[c]."""
    logits = logits.astype(jnp.float32)
    per = pos_weight * labels * jax.nn.softplus(-logits) + (1 - labels) * jax.nn.softplus(logits)
    return per.mean()


@dataclass(frozen=True)
class Steps:
    """The compiled functions of one model graph and optimizer."""

    graphdef: Any
    mesh: Mesh
    init: Callable[[nnx.Module], TrainState]
    train_step: Callable[..., tuple[TrainState, jax.Array]]
    predict_fn: Callable[[TrainState, jax.Array], jax.Array]
    features_fn: Callable[[TrainState, jax.Array], jax.Array]

    def shard(self, batch: np.ndarray) -> jax.Array:
        return jax.device_put(batch, NamedSharding(self.mesh, P("data")))

    def _padded(self, fn: Callable, state: TrainState, x: np.ndarray, size: int) -> np.ndarray:
        """Apply `fn` to `x` zero-padded to `size` rows (rounded up to the device count), so
        that every batch of an evaluation pass, the short last one too, has one shape."""
        n = len(x)
        size = max(size, n)
        size += (-size) % self.mesh.size
        if size > n:
            x = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), x.dtype)])
        return np.asarray(fn(state, self.shard(x)))[:n]

    def predict(self, state: TrainState, x: np.ndarray, size: int = 0) -> np.ndarray:
        """Sigmoid scores (eval mode) as float64 numpy; `size` as in `_padded`."""
        return self._padded(self.predict_fn, state, x, size).astype(np.float64)

    def features(self, state: TrainState, x: np.ndarray, size: int = 0) -> np.ndarray:
        """Penultimate features (eval mode); `size` as in `_padded`."""
        return self._padded(self.features_fn, state, x, size)


def make_steps(model: nnx.Module, *, optimizer: str, weight_decay: float) -> Steps:
    """Steps for `model`'s graph, shared with every earlier model of the same graph."""
    graphdef = nnx.graphdef(model)
    return _compiled(graphdef, optimizer, float(weight_decay), jax.device_count())


@functools.lru_cache(maxsize=16)
def _compiled(graphdef: Any, optimizer: str, weight_decay: float, n_devices: int) -> Steps:
    mesh = Mesh(np.array(jax.devices()[:n_devices]), ("data",))
    replicated = NamedSharding(mesh, P())
    tx = _optimizer(optimizer, weight_decay)

    def init(model: nnx.Module) -> TrainState:
        _, params, other = nnx.split(model, nnx.Param, ...)
        state = {"params": params, "other": other, "opt": tx.init(params)}
        return jax.device_put(state, replicated)

    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(
        state: TrainState, x: jax.Array, y: jax.Array, lr: jax.Array, pos_weight: jax.Array
    ) -> tuple[TrainState, jax.Array]:
        model = nnx.merge(graphdef, state["params"], state["other"])

        def loss_fn(model: nnx.Module) -> jax.Array:
            return bce_with_logits(model(x, train=True), y, pos_weight)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        _, _, other = nnx.split(model, nnx.Param, ...)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        updates = jax.tree.map(lambda u: -lr * u, updates)
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "other": other, "opt": opt}, loss

    @jax.jit
    def predict_fn(state: TrainState, x: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, state["params"], state["other"])
        return jax.nn.sigmoid(model(x, train=False).astype(jnp.float32))

    @jax.jit
    def features_fn(state: TrainState, x: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, state["params"], state["other"])
        return model.features(x, train=False).astype(jnp.float32)

    return Steps(graphdef, mesh, init, train_step, predict_fn, features_fn)
