"""The ResNet-1D of Ribeiro et al. (2020): size, cost, shapes, modes and the reference ordering."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from scaling import models
from scaling.config import ModelConfig

TINY = models.ladder_config("tiny")


@nnx.jit(static_argnames="train")
def apply(model: models.ResNet1D, x: jax.Array, train: bool) -> jax.Array:
    return model(x, train=train)


@nnx.jit(static_argnames="train")
def features(model: models.ResNet1D, x: jax.Array, train: bool) -> jax.Array:
    return model.features(x, train=train)


def abstract_model(cfg: ModelConfig, **shape: int) -> models.ResNet1D:
    return nnx.eval_shape(lambda: models.ResNet1D(cfg, **shape, rngs=nnx.Rngs(0)))


def param_leaves(model: nnx.Module) -> list[jax.Array]:
    return jax.tree.leaves(nnx.state(model, nnx.Param))


def randomise_batch_norm(model: nnx.Module, seed: int) -> None:
    """Non-trivial running statistics and affine parameters, so eval mode exercises them."""
    rng = np.random.default_rng(seed)
    for _, module in nnx.iter_modules(model):
        if isinstance(module, nnx.BatchNorm):
            n = module.num_features
            module.mean[...] = jnp.asarray(rng.normal(0, 0.5, n), jnp.float32)
            module.var[...] = jnp.asarray(rng.uniform(0.5, 2.0, n), jnp.float32)
            module.scale[...] = jnp.asarray(rng.uniform(0.5, 1.5, n), jnp.float32)
            module.bias[...] = jnp.asarray(rng.normal(0, 0.2, n), jnp.float32)


# ---------------------------------------------------------------------------
# Size and cost


def test_ribeiro_param_count_by_hand():
    k, leads, classes = 16, 12, 6
    stem = k * leads * 64 + 2 * 64  # conv without bias + BN scale and bias
    blocks = 0
    for c_in, c_out in [(64, 128), (128, 196), (196, 256), (256, 320)]:
        # conv k (in->out), conv k (out->out), two BNs, 1x1 skip conv (channels change)
        blocks += k * c_in * c_out + k * c_out * c_out + 2 * 2 * c_out + c_in * c_out
    head = (4096 // 4**4) * 320 * classes + classes  # flatten 16 x 320, dense with bias
    by_hand = stem + blocks + head

    cfg = ModelConfig()
    shape = dict(n_leads=leads, n_classes=classes, length=4096)
    assert models.param_count(cfg, **shape) == by_hand
    assert sum(p.size for p in param_leaves(abstract_model(cfg, **shape))) == by_hand
    assert 6.3e6 < by_hand < 6.5e6  # the paper's "about 6.4M"


@pytest.mark.parametrize(
    ("cfg", "leads", "classes", "length"),
    [
        (TINY, 12, 6, 4096),
        (TINY, 8, 5, 1000),  # length not divisible by 4^4: lengths round up ("SAME")
        (ModelConfig(width=0.3, blocks_per_stage=2, kernel_size=7), 1, 1, 2048),
        (ModelConfig(filters=(32, 32), downsample=(2, 1), stem_filters=32), 3, 2, 300),
    ],
)
def test_param_count_equals_instantiated_model(cfg, leads, classes, length):
    shape = dict(n_leads=leads, n_classes=classes, length=length)
    model = abstract_model(cfg, **shape)
    assert models.param_count(cfg, **shape) == sum(p.size for p in param_leaves(model))
    assert model.head.in_features == models.num_features(cfg, length=length)
    # BatchNorm running statistics are state, not parameters.
    assert all(p.dtype == jnp.float32 for p in param_leaves(model))
    assert jax.tree.leaves(nnx.state(model, nnx.BatchStat))


def test_ribeiro_training_flops_about_11_gflop():
    cfg = ModelConfig()
    forward = models.forward_flops(cfg, n_leads=12, n_classes=6, length=4096)
    assert 10e9 < 3 * forward < 12e9


@pytest.mark.skipif(
    jax.default_backend() != "cpu", reason="XLA:GPU's cost analysis leaves out cuDNN convolutions"
)
@pytest.mark.parametrize(
    ("cfg", "length"), [(ModelConfig(width=0.25), 1024), (ModelConfig(width=0.125), 512)]
)
def test_forward_flops_match_xla_cost_analysis(cfg, length):
    shape = dict(n_leads=12, n_classes=6, length=length)
    graphdef, state = nnx.split(abstract_model(cfg, **shape))

    def forward(state, x):
        return nnx.merge(graphdef, state)(x, train=False)

    x = jax.ShapeDtypeStruct((1, length, 12), jnp.float32)
    xla = jax.jit(forward).lower(state, x).compile().cost_analysis()["flops"]
    ours = models.forward_flops(cfg, **shape)
    assert abs(xla - ours) / ours < 0.1, (xla, ours)


# ---------------------------------------------------------------------------
# Ladder


def test_ladder_is_monotone_and_spans_20k_to_50m():
    shape = dict(n_leads=12, n_classes=6, length=4096)
    counts = {
        name: models.param_count(models.ladder_config(name), **shape) for name in models.LADDER
    }
    sizes = list(counts.values())
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes), counts
    scaling_rungs = [n for n in counts if n != "tiny"]
    assert 15e3 <= counts[scaling_rungs[0]] <= 30e3, counts
    assert 40e6 <= counts[scaling_rungs[-1]] <= 70e6, counts
    assert counts["tiny"] < 20e3
    assert models.ladder_config("ribeiro") == ModelConfig()


def test_ladder_config_keeps_the_base_and_rejects_unknown_names():
    base = ModelConfig(dropout=0.5, downsample=(2, 2, 2, 2))
    cfg = models.ladder_config("xs", base)
    assert (cfg.dropout, cfg.downsample, cfg.width) == (0.5, (2, 2, 2, 2), 0.125)
    with pytest.raises(ValueError, match=r"unknown model size 'huge'.*tiny.*ribeiro.*xxl"):
        models.ladder_config("huge")


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match=r"filters.*downsample.*same length"):
        models.param_count(
            ModelConfig(filters=(8, 8), downsample=(4,)), n_leads=12, n_classes=6, length=64
        )
    with pytest.raises(ValueError, match=r"ModelConfig\.dropout"):
        models.ResNet1D(
            dataclasses.replace(TINY, dropout=1.0),
            n_leads=12, n_classes=6, length=64, rngs=nnx.Rngs(0),
        )  # fmt: skip
    with pytest.raises(ValueError, match="n_classes"):
        models.forward_flops(TINY, n_leads=12, n_classes=0, length=64)


# ---------------------------------------------------------------------------
# Forward pass


@pytest.mark.parametrize(
    ("leads", "classes", "length"), [(12, 6, 4096), (8, 5, 1000), (1, 1, 256), (12, 3, 4)]
)
def test_output_shapes(leads, classes, length):
    model = abstract_model(TINY, n_leads=leads, n_classes=classes, length=length)
    x = jax.ShapeDtypeStruct((3, length, leads), jnp.float32)
    feats = nnx.eval_shape(lambda m, x: m.features(x, train=False), model, x)
    assert feats.shape == (3, models.num_features(TINY, length=length))
    assert nnx.eval_shape(lambda m, x: m(x, train=True), model, x).shape == (3, classes)
    assert models.num_features(TINY, length=length) == -(-length // 256) * 20
    with pytest.raises(ValueError, match=f"expects input \\(batch, {length}, n_leads\\)"):
        model(jnp.ones((3, length + 1, leads)), train=False)


def test_features_then_head_equals_call_and_head_is_replaceable():
    model = models.init_model(TINY, n_leads=12, n_classes=6, length=512, seed=1)
    x = jax.random.normal(jax.random.key(0), (4, 512, 12))
    np.testing.assert_allclose(
        model.head(features(model, x, False)), apply(model, x, False), rtol=1e-6
    )
    model.head = nnx.Linear(model.num_features, 3, rngs=nnx.Rngs(5))
    assert apply(model, x, False).shape == (4, 3)


def test_train_mode_uses_dropout_and_batch_stats_eval_mode_is_deterministic():
    model = models.init_model(TINY, n_leads=12, n_classes=6, length=512, seed=0)
    x = jax.random.normal(jax.random.key(1), (8, 512, 12))
    stem_mean = np.asarray(model.stem_bn.mean[...])

    eval_a, eval_b = apply(model, x, False), apply(model, x, False)
    np.testing.assert_array_equal(eval_a, eval_b)
    np.testing.assert_array_equal(model.stem_bn.mean[...], stem_mean)  # eval leaves stats

    train_a, train_b = apply(model, x, True), apply(model, x, True)
    assert not np.allclose(train_a, train_b)  # a new dropout mask each call
    assert not np.allclose(train_a, eval_a)
    assert not np.allclose(model.stem_bn.mean[...], stem_mean)  # running stats moved

    # Without dropout, train mode is deterministic but normalises with batch statistics.
    no_drop = models.init_model(
        dataclasses.replace(TINY, dropout=0.0), n_leads=12, n_classes=6, length=512, seed=0
    )
    np.testing.assert_allclose(apply(no_drop, x, True), apply(no_drop, x, True), rtol=1e-6)
    assert not np.allclose(apply(no_drop, x, True), apply(no_drop, x, False))


def test_bfloat16_compute_keeps_float32_params():
    model = models.init_model(TINY, n_leads=12, n_classes=6, length=256, seed=0, dtype=jnp.bfloat16)
    x = jax.random.normal(jax.random.key(0), (2, 256, 12))
    assert features(model, x, True).dtype == jnp.bfloat16
    assert {p.dtype for p in param_leaves(model)} == {jnp.dtype(jnp.float32)}
    logits = apply(model, x, False)
    assert logits.dtype == jnp.float32
    full = models.init_model(TINY, n_leads=12, n_classes=6, length=256, seed=0)
    np.testing.assert_allclose(logits, apply(full, x, False), rtol=0.1, atol=0.1)


def test_init_model_is_seeded_and_equals_eager_construction():
    shape = dict(n_leads=12, n_classes=6, length=256)
    a = models.init_model(TINY, **shape, seed=7)
    b = models.init_model(TINY, **shape, seed=7)
    c = models.init_model(TINY, **shape, seed=8)
    eager = models.ResNet1D(TINY, **shape, rngs=nnx.Rngs(jax.random.key(7)))
    for pa, pb, pe in zip(param_leaves(a), param_leaves(b), param_leaves(eager), strict=True):
        np.testing.assert_array_equal(pa, pb)
        np.testing.assert_allclose(pa, pe, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a.stem.kernel[...], c.stem.kernel[...])
    assert not np.allclose(a.head.kernel[...], c.head.kernel[...])


# ---------------------------------------------------------------------------
# The reference's exact ordering, against an independent NumPy forward pass


def np_same_conv(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """TensorFlow "same" convolution: (B, L, C) * (k, C, O), extra padding zero at the end."""
    length, k = x.shape[1], w.shape[0]
    out = -(-length // stride)
    total = max((out - 1) * stride + k - length, 0)
    xp = np.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)))
    windows = np.stack([xp[:, t : t + (out - 1) * stride + 1 : stride] for t in range(k)])
    return np.einsum("tblc,tco->blo", windows, w)


def np_same_max_pool(x: np.ndarray, size: int) -> np.ndarray:
    out = -(-x.shape[1] // size)
    total = out * size - x.shape[1]
    xp = np.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)), constant_values=-np.inf)
    return np.stack([xp[:, i * size : (i + 1) * size].max(axis=1) for i in range(out)], axis=1)


def np_bn_relu(x: np.ndarray, bn: nnx.BatchNorm) -> np.ndarray:
    y = (x - bn.mean[...]) / np.sqrt(bn.var[...] + bn.epsilon) * bn.scale[...] + bn.bias[...]
    return np.maximum(y, 0.0)


def reference_forward(model: models.ResNet1D, x: np.ndarray) -> np.ndarray:
    """Ribeiro et al.'s Keras model (eval mode) written out from its source, in NumPy."""
    x = np_bn_relu(np_same_conv(x, np.asarray(model.stem.kernel[...]), 1), model.stem_bn)
    y = x
    for blk in model.blocks:
        if blk.downsample > 1:
            y = np_same_max_pool(y, blk.downsample)
        if blk.skip is not None:
            y = np_same_conv(y, np.asarray(blk.skip.kernel[...]), 1)
        x = np_bn_relu(np_same_conv(x, np.asarray(blk.conv1.kernel[...]), 1), blk.bn1)
        x = np_same_conv(x, np.asarray(blk.conv2.kernel[...]), blk.downsample)
        x = x + y  # the sum, before BN and ReLU, is the next skip input
        y = x
        x = np_bn_relu(x, blk.bn2)
    flat = x.reshape(x.shape[0], -1)
    return flat @ np.asarray(model.head.kernel[...]) + np.asarray(model.head.bias[...])


@pytest.mark.parametrize(
    ("cfg", "length"),
    [(TINY, 512), (TINY, 300), (dataclasses.replace(TINY, blocks_per_stage=2, kernel_size=4), 256)],
)
def test_matches_numpy_reference_of_the_keras_model(cfg, length):
    model = models.init_model(cfg, n_leads=12, n_classes=6, length=length, seed=3)
    randomise_batch_norm(model, seed=4)
    x = np.random.default_rng(5).standard_normal((2, length, 12)).astype(np.float32)
    with jax.default_matmul_precision("highest"):  # no TF32 on GPU
        ours = apply(model, jnp.asarray(x), False)
    np.testing.assert_allclose(ours, reference_forward(model, x), rtol=2e-4, atol=2e-4)


# ---------------------------------------------------------------------------
# The CPU-friendly ops equal the XLA/Flax ops they replace, gradients included


@pytest.mark.parametrize(
    ("length", "k", "stride"), [(64, 16, 4), (61, 16, 4), (64, 7, 4), (50, 7, 3), (9, 16, 2)]
)
def test_strided_conv_equals_xla_same_conv(length, k, stride):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, length, 5)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, 5, 3)), jnp.float32)
    dn = ("NWC", "WIO", "NWC")

    def xla(x, w):
        return jax.lax.conv_general_dilated(x, w, (stride,), "SAME", dimension_numbers=dn)

    def folded(x, w):
        return models.strided_conv(x, w, (stride,), "SAME", dimension_numbers=dn)

    np.testing.assert_allclose(folded(x, w), xla(x, w), rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda x, w, f=f: (f(x, w) ** 2).sum(), (0, 1))(x, w) for f in (xla, folded)]
    for g_xla, g_folded in zip(*grads, strict=True):
        np.testing.assert_allclose(g_folded, g_xla, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("length", "window"), [(64, 4), (61, 4), (10, 3), (5, 1)])
def test_max_pool_equals_flax_same_max_pool(length, window):
    x = jax.random.normal(jax.random.key(0), (2, length, 3))
    np.testing.assert_array_equal(
        models.max_pool(x, window), nnx.max_pool(x, (window,), (window,), padding="SAME")
    )
