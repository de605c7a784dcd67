"""The ResNet-1D of Ribeiro et al. (2020) in Flax NNX, its size ladder, parameter counts and FLOPs.

Ribeiro et al., "Automatic diagnosis of the 12-lead ECG using a deep neural network",
Nat Commun 11, 1760 (2020); reference implementation: github.com/antonior92/automatic-ecg-diagnosis
(Keras, `model.py`). This module follows that Keras model exactly:

    stem:   conv(k, stem_filters, "same", no bias) -> BN -> ReLU            gives x; y = x
    block:  y = maxpool(ds)(y), then a 1x1 conv (no bias) if channels change
            x = conv(k, "same") -> BN -> ReLU -> dropout -> conv(k, stride ds, "same")
            x = x + y;  y = x                     (the skip path carries the pre-activation sum)
            x = BN -> ReLU -> dropout (x)         (the next block's input is post-activation)
    head:   flatten x (length-major, as Keras' Flatten on (length, channels)) -> dense, one logit
            per class (the sigmoid lives in the loss).

Tensors are (batch, length, channels), as in Keras. Flax's "SAME" padding puts
`(total - total // 2)` zeros after and `total // 2` before, as TensorFlow does, so the
padding matches the reference and each block's output length is exactly
`ceil(length / downsample)` (the division is exact when the length divides the total
downsampling). Initialisation is the reference's `he_normal` (truncated normal, fan-in, scale 2)
for every conv and the dense layer; BatchNorm uses Keras' defaults (momentum 0.99, epsilon 1e-3).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from scaling.config import ConfigError, ModelConfig, check_model

BN_MOMENTUM = 0.99  # Keras BatchNormalization default, as in the reference
BN_EPSILON = 1e-3
KERNEL_INIT = nnx.initializers.he_normal()


class Block(NamedTuple):
    """One residual block of the plan: channels in and out, downsampling and lengths."""

    c_in: int
    c_out: int
    downsample: int
    length_in: int
    length_out: int


def scaled(filters: int, width: float) -> int:
    """A filter count multiplied by the width factor, rounded, at least 1."""
    return max(1, round(filters * width))


def block_plan(cfg: ModelConfig, length: int) -> Iterator[Block]:
    """The residual blocks in order: the first of each stage downsamples and changes channels."""
    check_model(cfg)
    c_in = scaled(cfg.stem_filters, cfg.width)
    for filters, ds in zip(cfg.filters, cfg.downsample, strict=True):
        c_out = scaled(filters, cfg.width)
        for i in range(cfg.blocks_per_stage):
            step = ds if i == 0 else 1
            yield Block(c_in, c_out, step, length, -(-length // step))
            c_in, length = c_out, -(-length // step)


def _validate(cfg: ModelConfig, n_leads: int, n_classes: int, length: int) -> None:
    for name, value in (("n_leads", n_leads), ("n_classes", n_classes), ("length", length)):
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")
    check_model(cfg)


def max_pool(x: jax.Array, window: int) -> jax.Array:
    """Non-overlapping max-pool over the length axis with "SAME" padding, by reshape.

    Same result as `nnx.max_pool(x, (w,), (w,), "SAME")`, but its gradient is an elementwise
    mask instead of XLA's select-and-scatter, which is slow on CPU.
    """
    length = x.shape[1]
    out = -(-length // window)
    total = out * window - length
    x = jnp.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)), constant_values=-jnp.inf)
    return x.reshape(x.shape[0], out, window, x.shape[2]).max(axis=2)


def strided_conv(lhs: jax.Array, rhs: jax.Array, window_strides, padding, **kwargs) -> jax.Array:
    """A "SAME" 1-D convolution with stride s, computed as a stride-1 convolution over the
    input folded into blocks of s samples (space-to-depth).

    Same result as `lax.conv_general_dilated(lhs, rhs, (s,), "SAME", ...)` for
    (batch, length, channels) inputs and (kernel, in, out) kernels; a drop-in for
    `nnx.Conv(conv_general_dilated=...)`. XLA:CPU computes the input gradient of a strided
    convolution as a convolution over the zero-dilated output gradient, spending s times the
    work; the folded form's gradients are ordinary stride-1 convolutions. Other backends
    (cuDNN) handle strides natively and get the plain convolution.
    """
    (stride,) = window_strides
    if stride == 1 or padding != "SAME" or jax.default_backend() != "cpu":
        return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs)
    batch, length, c_in = lhs.shape
    k, _, c_out = rhs.shape
    out = -(-length // stride)
    total = max((out - 1) * stride + k - length, 0)
    taps = -(-k // stride)  # kernel taps after folding
    padded = (out - 1 + taps) * stride
    lhs = jnp.pad(lhs, ((0, 0), (total // 2, padded - length - total // 2), (0, 0)))
    rhs = jnp.pad(rhs, ((0, taps * stride - k), (0, 0), (0, 0)))
    lhs = lhs.reshape(batch, padded // stride, stride * c_in)
    rhs = rhs.reshape(taps, stride * c_in, c_out)
    return jax.lax.conv_general_dilated(lhs, rhs, (1,), "VALID", **kwargs)


class ResidualBlock(nnx.Module):
    """A pre-activation residual unit of the reference; maps (x, y) to (x, y)."""

    def __init__(
        self, block: Block, kernel_size: int, dropout: float, *, dtype: jnp.dtype, rngs: nnx.Rngs
    ):
        conv = dict(use_bias=False, kernel_init=KERNEL_INIT, dtype=dtype, rngs=rngs)
        bn = dict(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype, rngs=rngs)
        self.downsample = block.downsample
        self.conv1 = nnx.Conv(block.c_in, block.c_out, kernel_size, **conv)
        self.bn1 = nnx.BatchNorm(block.c_out, **bn)
        self.dropout1 = nnx.Dropout(dropout, rngs=rngs)
        self.conv2 = nnx.Conv(
            block.c_out, block.c_out, kernel_size, block.downsample,
            conv_general_dilated=strided_conv, **conv,
        )  # fmt: skip
        self.bn2 = nnx.BatchNorm(block.c_out, **bn)
        self.dropout2 = nnx.Dropout(dropout, rngs=rngs)
        self.skip = (
            nnx.Conv(block.c_in, block.c_out, 1, **conv) if block.c_in != block.c_out else None
        )

    def __call__(self, x: jax.Array, y: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
        if self.downsample > 1:
            y = max_pool(y, self.downsample)
        if self.skip is not None:
            y = self.skip(y)
        x = self.conv1(x)
        x = nnx.relu(self.bn1(x, use_running_average=not train))
        x = self.dropout1(x, deterministic=not train)
        x = self.conv2(x)
        x = y = x + y
        x = nnx.relu(self.bn2(x, use_running_average=not train))
        x = self.dropout2(x, deterministic=not train)
        return x, y


class ResNet1D(nnx.Module):
    """The Ribeiro et al. (2020) ResNet-1D: (batch, length, n_leads) -> (batch, n_classes) logits.

    `dtype` is the computation dtype (parameters stay float32): `jnp.bfloat16` runs the convs,
    BatchNorm and activations in bfloat16. The head is a float32 `nnx.Linear` in `self.head`, so
    the logits are float32 and a replacement head (`nnx.Linear(F, k, rngs=...)`) behaves the same.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        n_leads: int,
        n_classes: int,
        length: int,
        rngs: nnx.Rngs,
        dtype: jnp.dtype = jnp.float32,
    ):
        _validate(cfg, n_leads, n_classes, length)
        stem = scaled(cfg.stem_filters, cfg.width)
        self.length = length
        self.stem = nnx.Conv(
            n_leads, stem, cfg.kernel_size, use_bias=False, kernel_init=KERNEL_INIT,
            dtype=dtype, rngs=rngs,
        )  # fmt: skip
        self.stem_bn = nnx.BatchNorm(
            stem, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype, rngs=rngs
        )
        plan = list(block_plan(cfg, length))
        self.blocks = nnx.List(
            ResidualBlock(b, cfg.kernel_size, cfg.dropout, dtype=dtype, rngs=rngs) for b in plan
        )
        self.num_features = plan[-1].length_out * plan[-1].c_out
        self.head = nnx.Linear(self.num_features, n_classes, kernel_init=KERNEL_INIT, rngs=rngs)

    def features(self, x: jax.Array, *, train: bool) -> jax.Array:
        """The flattened output of the last block, (batch, num_features), before the head."""
        if x.ndim != 3 or x.shape[1] != self.length:
            raise ValueError(
                f"ResNet1D expects input (batch, {self.length}, n_leads), got shape {x.shape}"
            )
        x = nnx.relu(self.stem_bn(self.stem(x), use_running_average=not train))
        y = x
        for block in self.blocks:
            x, y = block(x, y, train=train)
        return x.reshape(x.shape[0], -1)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        return self.head(self.features(x, train=train))


# ---------------------------------------------------------------------------
# Analytic size and cost


def num_features(cfg: ModelConfig, *, length: int) -> int:
    """Width of the flattened penultimate features: final length × final channels."""
    last = list(block_plan(cfg, length))[-1]
    return last.length_out * last.c_out


def param_count(cfg: ModelConfig, *, n_leads: int, n_classes: int, length: int) -> int:
    """Trainable parameters, from the architecture (BatchNorm running stats are not counted).

    Convs have no bias; each BatchNorm has a scale and a bias per channel; the dense head has a
    weight matrix and a bias.
    """
    _validate(cfg, n_leads, n_classes, length)
    k = cfg.kernel_size
    stem = scaled(cfg.stem_filters, cfg.width)
    total = k * n_leads * stem + 2 * stem
    for b in block_plan(cfg, length):
        total += k * b.c_in * b.c_out + k * b.c_out * b.c_out + 4 * b.c_out
        if b.c_in != b.c_out:
            total += b.c_in * b.c_out
    return total + num_features(cfg, length=length) * n_classes + n_classes


def forward_flops(cfg: ModelConfig, *, n_leads: int, n_classes: int, length: int) -> int:
    """Forward FLOPs per example: 2 × the multiply-adds of the convs and the dense head.

    BatchNorm, ReLU, dropout, max-pool and the residual add are not counted (together a few
    per cent of the total for the reference net). A conv's multiply-adds are
    output length × kernel × channels in × channels out, counting the zero padding.
    """
    _validate(cfg, n_leads, n_classes, length)
    k = cfg.kernel_size
    stem = scaled(cfg.stem_filters, cfg.width)
    macs = length * k * n_leads * stem
    for b in block_plan(cfg, length):
        macs += b.length_in * k * b.c_in * b.c_out + b.length_out * k * b.c_out * b.c_out
        if b.c_in != b.c_out:
            macs += b.length_out * b.c_in * b.c_out
    macs += num_features(cfg, length=length) * n_classes
    return 2 * macs


# ---------------------------------------------------------------------------
# Size ladder

LADDER: dict[str, dict[str, object]] = {
    "tiny": {"stem_filters": 8, "filters": (8, 12, 16, 20), "kernel_size": 7},
    "xxs": {"width": 0.0625},
    "xs": {"width": 0.125},
    "s": {"width": 0.25},
    "m": {"width": 0.5},
    "ribeiro": {},
    "l": {"width": math.sqrt(2)},
    "xl": {"width": 2.0},
    "xxl": {"width": 2.0, "blocks_per_stage": 2},
}
"""Named model sizes as `ModelConfig` overrides, smallest first ("tiny" is for tests and demos)."""


def ladder_config(name: str, base: ModelConfig | None = None) -> ModelConfig:
    """The `ModelConfig` of a ladder rung: `base` (default: the Ribeiro net) with its overrides."""
    if name not in LADDER:
        raise ConfigError(f"unknown model size '{name}'; the ladder has: {', '.join(LADDER)}")
    return dataclasses.replace(base or ModelConfig(), **LADDER[name])


# ---------------------------------------------------------------------------
# Construction


# The init program runs once, so XLA's backend optimisations are not worth their compile time
# (full net on CPU: about 4.5 s to compile at the default level, 1.2 s at level 0).
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


@functools.cache
def _initializer(
    cfg: ModelConfig, n_leads: int, n_classes: int, length: int, dtype: jnp.dtype
) -> tuple[nnx.GraphDef, Callable[[jax.Array], nnx.State]]:
    """The model's structure and a jitted function from a PRNG key to its state."""

    def build(key: jax.Array) -> ResNet1D:
        shape = dict(n_leads=n_leads, n_classes=n_classes, length=length)
        return ResNet1D(cfg, **shape, dtype=dtype, rngs=nnx.Rngs(key))

    graphdef = nnx.graphdef(nnx.eval_shape(lambda: build(jax.random.key(0))))
    init = jax.jit(lambda key: nnx.state(build(key)), compiler_options=_FAST_COMPILE)
    return graphdef, init


def init_model(
    cfg: ModelConfig,
    *,
    n_leads: int,
    n_classes: int,
    length: int,
    seed: int,
    dtype: jnp.dtype = jnp.float32,
) -> ResNet1D:
    """A freshly initialised `ResNet1D`, its weights drawn by one jitted XLA program.

    Same weights as `ResNet1D(..., rngs=nnx.Rngs(jax.random.key(seed)))`, built several times
    faster than eagerly (hundreds of small random-number ops, each dispatched on its own).
    """
    _validate(cfg, n_leads, n_classes, length)
    graphdef, init = _initializer(cfg, n_leads, n_classes, length, dtype)
    return nnx.merge(graphdef, init(jax.random.key(seed)))
