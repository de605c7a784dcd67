"""Checkpoints: packed state round trips, old one-array-per-leaf checkpoints still restore."""

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from scaling.checkpoint import Checkpoints, read_arrays


def a_state(seed: int) -> dict:
    """A train-state-shaped pytree with every kind of leaf a run has."""
    rng = np.random.default_rng(seed)
    return {
        "params": {
            "conv": {"kernel": jnp.asarray(rng.normal(size=(3, 2, 4)), jnp.float32)},
            "head": {"bias": jnp.asarray(rng.normal(size=4), jnp.bfloat16)},
        },
        "other": {"dropout": {"key": jax.random.key(seed)}, "mean": jnp.zeros(4)},
        "opt": {"count": jnp.asarray(seed, jnp.int32)},
    }


def assert_same(a: dict, b: dict) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x, np.float64), np.asarray(y, np.float64))


def test_the_packed_state_restores_exactly_with_its_meta(tmp_path):
    ckpts = Checkpoints(epath.Path(tmp_path))
    ckpts.save(10, a_state(1), {"step": 10})
    ckpts.save(20, a_state(2), {"step": 20})
    ckpts.save_best(a_state(3), 20)
    ckpts.close()

    ckpts = Checkpoints(epath.Path(tmp_path))
    state, meta = ckpts.restore_latest(a_state(0))
    assert meta == {"step": 20}
    assert_same(state, a_state(2))
    assert_same(ckpts.restore_best(a_state(0)), a_state(3))
    ckpts.close()
    arrays = read_arrays(epath.Path(tmp_path))
    assert set(arrays) == {
        "['params']['conv']['kernel']",
        "['params']['head']['bias']",
        "['other']['dropout']['key']",
        "['other']['mean']",
        "['opt']['count']",
    }
    np.testing.assert_array_equal(
        arrays["['params']['conv']['kernel']"], np.asarray(a_state(3)["params"]["conv"]["kernel"])
    )


def test_a_checkpoint_written_one_array_per_leaf_still_resumes(tmp_path):
    old = a_state(5)
    raw = {
        **old,
        "other": {**old["other"], "dropout": {"key": jax.random.key_data(jax.random.key(5))}},
    }
    manager = ocp.CheckpointManager(
        epath.Path(tmp_path) / "latest",
        options=ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False),
    )
    manager.save(
        30,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(raw), meta=ocp.args.JsonSave({"step": 30})
        ),
    )
    manager.close()

    ckpts = Checkpoints(epath.Path(tmp_path))
    state, meta = ckpts.restore_latest(a_state(0))
    ckpts.close()
    assert meta == {"step": 30}
    assert_same(state, old)
    assert (epath.Path(tmp_path) / "latest" / "30").exists()  # read, not deleted as damaged
