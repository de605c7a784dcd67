"""Training speed of the Flax ResNet-1D against a plain PyTorch twin, measured in the same run.

Each figure is one JSON line on stdout:

- `peak_matmul`: the machine's peak, estimated as the best of a 4096² matmul in JAX (in the
  compute dtype) and in PyTorch (float32): what the hardware sustains on a large GEMM, not a
  datasheet number (on GPU, JAX's float32 matmul runs in TF32);
- `init`: seconds to build the Flax model eagerly and with `scaling.models.init_model`;
- `compile`: seconds to trace and compile the jitted Flax train step;
- `train`: training examples/s of Flax and PyTorch (Adam, binary cross-entropy, dropout and
  BatchNorm in training mode, batch of random signals) and their ratio, and each one's achieved
  FLOP/s as a fraction of the measured peak (FLOPs per step = 3 × `forward_flops` × batch);
- `block1_ops`: forward + backward time of the first block's strided conv and max-pool, as XLA
  computes them natively and as `scaling.models` computes them (`strided_conv`, `max_pool`).

The Flax side runs under XLA's default flags unless `--xla-flags` is given. On the 2-core AMD
EPYC (Zen 4) dev machine, with jax 0.10.2, no flag beat the defaults beyond run-to-run noise
(±10-20% on a shared machine) in interleaved A/B runs of the full train step. Tried:
`--xla_cpu_multi_thread_eigen=false` (no change: the thunk runtime still runs convolutions on
all cores), `--xla_cpu_enable_fast_math=true` (within noise, and it drops NaN/Inf semantics),
`--xla_cpu_use_fusion_emitters=false`, `--xla_cpu_prefer_vector_width=512`,
`--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY` (fuses nothing in
this model), `--xla_cpu_experimental_ynn_fusion_type=...` (1-D convolutions are not
offloaded), `--xla_cpu_use_onednn=true` (this jaxlib has no oneDNN), NCW layouts and 2-D
convolutions (slower: XLA transposes to NWC). What did help is in the model itself:
`strided_conv` and `max_pool`.
PyTorch (`pip install torch==2.13.0`, CPU build) uses all cores:
`torch.set_num_threads(os.cpu_count())`. `--no-torch` skips it (e.g. on a GPU machine).

    python benchmarks/train.py [--width 1.0] [--length 4096] [--batch 64] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling import models
from scaling.config import ModelConfig

NWC = ("NWC", "WIO", "NWC")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=float, default=1.0, help="ModelConfig.width")
    p.add_argument("--length", type=int, default=4096, help="samples per exam")
    p.add_argument("--leads", type=int, default=12)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=3, help="timed steps, after one warm-up step")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--xla-flags", default=None, help="XLA_FLAGS for Flax; default none")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    return p.parse_args()


def emit(figure: str, **values: object) -> None:
    print(json.dumps({"figure": figure, **values}), flush=True)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` calls of `fn` (which must block until done), in seconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# ---------------------------------------------------------------------------
# Flax


def flax_benchmark(args: argparse.Namespace, cfg: ModelConfig) -> dict[str, float]:
    shape = dict(n_leads=args.leads, n_classes=args.classes, length=args.length)
    dtype = jnp.dtype(args.dtype)

    t = time.perf_counter()
    jax.block_until_ready(nnx.state(models.ResNet1D(cfg, **shape, dtype=dtype, rngs=nnx.Rngs(0))))
    init_eager = time.perf_counter() - t
    t = time.perf_counter()
    model = models.init_model(cfg, **shape, seed=0, dtype=dtype)
    jax.block_until_ready(nnx.state(model))
    init_jit = time.perf_counter() - t

    tx = optax.adam(1e-3)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = tx.init(params)

    def loss_fn(params, rest, x, y):
        model = nnx.merge(graphdef, params, rest, copy=True)
        loss = optax.sigmoid_binary_cross_entropy(model(x, train=True), y).mean()
        return loss, nnx.state(model, nnx.Not(nnx.Param))  # new BatchNorm stats, RNG counts

    def step(params, rest, opt_state, x, y):
        (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((args.batch, args.length, args.leads), np.float32))
    y = jnp.asarray(rng.integers(0, 2, (args.batch, args.classes)), jnp.float32)

    t = time.perf_counter()
    lowered = jax.jit(step, donate_argnums=(0, 1, 2)).lower(params, rest, opt_state, x, y)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t

    state = (params, rest, opt_state)

    def run() -> None:
        nonlocal state
        *state, loss = compiled(*state, x, y)
        loss.block_until_ready()

    run()
    step_s = best_time(run, args.steps)
    return dict(init_eager=init_eager, init_jit=init_jit, compile=compile_s, step=step_s)


def jax_matmul_flops(dtype: jnp.dtype, n: int = 4096) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    matmul = jax.jit(lambda a: a @ a)
    matmul(a).block_until_ready()
    return 2 * n**3 / best_time(lambda: matmul(a).block_until_ready(), 5)


def block1_ops(args: argparse.Namespace, cfg: ModelConfig) -> dict[str, float]:
    """Seconds for forward + backward of block 1's strided conv and max-pool, both ways."""
    block = next(models.block_plan(cfg, args.length))
    ds, k = block.downsample, cfg.kernel_size
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (args.batch, block.length_in, block.c_out))
    w = jax.random.normal(keys[1], (k, block.c_out, block.c_out)) * 0.05
    y = jax.random.normal(keys[2], (args.batch, block.length_in, block.c_in))

    def timed(f: Callable[..., jax.Array], *inputs: jax.Array) -> float:
        argnums = tuple(range(len(inputs)))
        grad = jax.jit(jax.value_and_grad(lambda *a: (f(*a) ** 2).sum(), argnums))
        jax.block_until_ready(grad(*inputs))
        return best_time(lambda: jax.block_until_ready(grad(*inputs)), args.steps)

    return dict(
        conv_xla=timed(
            lambda x, w: jax.lax.conv_general_dilated(x, w, (ds,), "SAME", dimension_numbers=NWC),
            x, w,
        ),
        conv_folded=timed(
            lambda x, w: models.strided_conv(x, w, (ds,), "SAME", dimension_numbers=NWC), x, w
        ),
        pool_xla=timed(lambda y: nnx.max_pool(y, (ds,), (ds,), padding="SAME"), y),
        pool_reshape=timed(lambda y: models.max_pool(y, ds), y),
    )  # fmt: skip


# ---------------------------------------------------------------------------
# PyTorch: the same architecture (Keras "same" padding, BN momentum and epsilon), NCW layout


def torch_benchmark(args: argparse.Namespace, cfg: ModelConfig) -> dict[str, float]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(os.cpu_count() or 1)
    k = cfg.kernel_size
    momentum = 1 - models.BN_MOMENTUM  # PyTorch weighs the new batch by `momentum`

    def same_pad(length: int, stride: int) -> tuple[int, int]:
        """TensorFlow/Flax "SAME" padding: the odd zero goes after."""
        total = max((-(-length // stride) - 1) * stride + k - length, 0)
        return total // 2, total - total // 2

    class Block(nn.Module):
        def __init__(self, b: models.Block):
            super().__init__()
            self.ds, self.length = b.downsample, b.length_in
            self.conv1 = nn.Conv1d(b.c_in, b.c_out, k, bias=False)
            self.bn1 = nn.BatchNorm1d(b.c_out, momentum=momentum, eps=models.BN_EPSILON)
            self.conv2 = nn.Conv1d(b.c_out, b.c_out, k, stride=b.downsample, bias=False)
            self.bn2 = nn.BatchNorm1d(b.c_out, momentum=momentum, eps=models.BN_EPSILON)
            self.drop = nn.Dropout(cfg.dropout)
            self.skip = nn.Conv1d(b.c_in, b.c_out, 1, bias=False) if b.c_in != b.c_out else None

        def forward(self, x, y):
            if self.ds > 1:
                y = F.max_pool1d(y, self.ds, self.ds, ceil_mode=True)
            if self.skip is not None:
                y = self.skip(y)
            x = self.conv1(F.pad(x, same_pad(self.length, 1)))
            x = self.drop(F.relu(self.bn1(x)))
            x = self.conv2(F.pad(x, same_pad(self.length, self.ds)))
            x = y = x + y
            return self.drop(F.relu(self.bn2(x))), y

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            stem = models.scaled(cfg.stem_filters, cfg.width)
            self.stem = nn.Conv1d(args.leads, stem, k, bias=False)
            self.bn = nn.BatchNorm1d(stem, momentum=momentum, eps=models.BN_EPSILON)
            self.blocks = nn.ModuleList(Block(b) for b in models.block_plan(cfg, args.length))
            self.head = nn.Linear(models.num_features(cfg, length=args.length), args.classes)

        def forward(self, x):  # x: (batch, leads, length)
            x = F.relu(self.bn(self.stem(F.pad(x, same_pad(args.length, 1)))))
            y = x
            for block in self.blocks:
                x, y = block(x, y)
            return self.head(x.transpose(1, 2).flatten(1))  # flatten length-major, as Keras

    torch.manual_seed(0)
    net = Net().train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(args.batch, args.leads, args.length)
    y = torch.randint(0, 2, (args.batch, args.classes)).float()

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(net(x), y).backward()
        opt.step()

    run()
    step_s = best_time(run, args.steps)

    a = torch.randn(4096, 4096)
    matmul = 2 * 4096**3 / best_time(lambda: a @ a, 5)
    return dict(step=step_s, matmul_flops=matmul)


def main() -> None:
    args = parse_args()
    flags = args.xla_flags or ""
    # Before JAX starts its backend (the first array op below), so XLA reads them.
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()

    cfg = ModelConfig(width=args.width)
    shape = dict(n_leads=args.leads, n_classes=args.classes, length=args.length)
    step_flops = 3 * args.batch * models.forward_flops(cfg, **shape)
    setup = dict(
        width=args.width, length=args.length, batch=args.batch, dtype=args.dtype,
        params=models.param_count(cfg, **shape), device=jax.devices()[0].device_kind,
    )  # fmt: skip

    jax_peak = jax_matmul_flops(jnp.dtype(args.dtype))
    flax = flax_benchmark(args, cfg)
    ops = block1_ops(args, cfg)
    torch = None if args.no_torch else torch_benchmark(args, cfg)
    torch_peak = torch["matmul_flops"] if torch else None
    peak = max(jax_peak, torch_peak or 0.0)

    emit(
        "peak_matmul", gflops=peak / 1e9, jax_gflops=jax_peak / 1e9,
        torch_gflops=torch_peak / 1e9 if torch_peak else None, n=4096,
    )  # fmt: skip
    emit(
        "init", eager_s=flax["init_eager"], jit_s=flax["init_jit"],
        speedup=flax["init_eager"] / flax["init_jit"], **setup,
    )  # fmt: skip
    emit("compile", seconds=flax["compile"], xla_flags=flags, **setup)
    flax_rate = args.batch / flax["step"]
    train = dict(
        flax_examples_per_s=flax_rate,
        flax_fraction_of_peak=step_flops / flax["step"] / peak,
        step_gflop=step_flops / 1e9,
    )
    if torch:
        torch_rate = args.batch / torch["step"]
        train.update(
            torch_examples_per_s=torch_rate,
            torch_fraction_of_peak=step_flops / torch["step"] / peak,
            ratio=flax_rate / torch_rate,
        )
    emit("train", **train, xla_flags=flags, **setup)
    emit(
        "block1_ops", **{f"{name}_ms": 1000 * s for name, s in ops.items()},
        conv_speedup=ops["conv_xla"] / ops["conv_folded"],
        pool_speedup=ops["pool_xla"] / ops["pool_reshape"], **setup,
    )  # fmt: skip


if __name__ == "__main__":
    main()
