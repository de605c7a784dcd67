"""Training speed of the Flax ResNet-1D against a plain PyTorch twin, measured in the same run.

Each figure is one JSON line on stdout:

- `peak_matmul`: the machine's float32 peak, estimated as the best of a large matmul in JAX and
  in PyTorch (an estimate of what the hardware sustains, not a datasheet number);
- `init`: seconds to build the Flax model eagerly and with `scaling.models.init_model`;
- `compile`: seconds to trace and compile the jitted Flax train step;
- `train`: training examples/s of Flax and PyTorch (Adam, binary cross-entropy, dropout and
  BatchNorm in training mode) and their ratio, plus the achieved FLOP/s of each as a fraction
  of the measured peak (FLOPs per step = 3 × `forward_flops` × batch).

The Flax side runs under the XLA flags of `scaling.models.cpu_xla_flags()` unless `--xla-flags`
is given (an empty string means XLA's defaults). PyTorch uses all cores:
`torch.set_num_threads(os.cpu_count())`. Needs `pip install torch==2.13.0` (CPU build).

    python benchmarks/train.py [--width 1.0] [--length 4096] [--batch 64] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling import models


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=float, default=1.0, help="ModelConfig.width")
    p.add_argument("--length", type=int, default=4096, help="samples per exam")
    p.add_argument("--leads", type=int, default=12)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=3, help="timed steps, after one warm-up step")
    p.add_argument("--xla-flags", default=None, help="XLA_FLAGS for Flax; default cpu_xla_flags()")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    return p.parse_args()


def emit(figure: str, **values: object) -> None:
    print(json.dumps({"figure": figure, **values}), flush=True)


def best_time(fn, repeats: int) -> float:
    """The fastest of `repeats` calls of `fn` (which must block until done), in seconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# ---------------------------------------------------------------------------
# Flax


def flax_benchmark(args: argparse.Namespace) -> dict[str, float]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx

    cfg = models.ModelConfig(width=args.width)
    shape = dict(n_leads=args.leads, n_classes=args.classes, length=args.length)

    t = time.perf_counter()
    eager = models.ResNet1D(cfg, **shape, rngs=nnx.Rngs(0))
    jax.block_until_ready(nnx.state(eager))
    init_eager = time.perf_counter() - t
    del eager
    t = time.perf_counter()
    model = models.init_model(cfg, **shape, seed=0)
    jax.block_until_ready(nnx.state(model))
    init_jit = time.perf_counter() - t

    tx = optax.adam(1e-3)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = tx.init(params)

    def loss_fn(params, rest, x, y):
        model = nnx.merge(graphdef, params, rest, copy=True)
        logits = model(x, train=True)
        loss = optax.sigmoid_binary_cross_entropy(logits, y).mean()
        return loss, nnx.state(model, nnx.Not(nnx.Param))

    def step(params, rest, opt_state, x, y):
        (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((args.batch, args.length, args.leads), np.float32))
    y = jnp.asarray(rng.integers(0, 2, (args.batch, args.classes)).astype(np.float32))

    t = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1, 2)).lower(params, rest, opt_state, x, y)
    compiled = compiled.compile()
    compile_s = time.perf_counter() - t

    state = (params, rest, opt_state)

    def run() -> None:
        nonlocal state
        *state, loss = compiled(*state, x, y)
        loss.block_until_ready()

    run()
    step_s = best_time(run, args.steps)
    return dict(init_eager=init_eager, init_jit=init_jit, compile=compile_s, step=step_s)


def jax_matmul_flops(n: int = 4096) -> float:
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    mm(a).block_until_ready()
    return 2 * n**3 / best_time(lambda: mm(a).block_until_ready(), 3)


# ---------------------------------------------------------------------------
# PyTorch


def torch_benchmark(args: argparse.Namespace) -> dict[str, float]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(os.cpu_count() or 1)
    cfg = models.ModelConfig(width=args.width)
    k = cfg.kernel_size

    def same_pad(length: int, stride: int) -> tuple[int, int]:
        """TensorFlow/Flax "SAME" padding: the extra zero goes after."""
        total = max((-(-length // stride) - 1) * stride + k - length, 0)
        return total // 2, total - total // 2

    class Block(nn.Module):
        def __init__(self, b: models.Block):
            super().__init__()
            self.ds, self.length = b.downsample, b.length_in
            self.conv1 = nn.Conv1d(b.c_in, b.c_out, k, bias=False)
            self.bn1 = nn.BatchNorm1d(b.c_out, momentum=0.01, eps=1e-3)
            self.conv2 = nn.Conv1d(b.c_out, b.c_out, k, stride=b.downsample, bias=False)
            self.bn2 = nn.BatchNorm1d(b.c_out, momentum=0.01, eps=1e-3)
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
            self.bn = nn.BatchNorm1d(stem, momentum=0.01, eps=1e-3)
            self.blocks = nn.ModuleList(Block(b) for b in models.block_plan(cfg, args.length))
            features = models.num_features(cfg, length=args.length)
            self.head = nn.Linear(features, args.classes)

        def forward(self, x):  # x: (batch, leads, length)
            x = F.relu(self.bn(self.stem(F.pad(x, same_pad(args.length, 1)))))
            y = x
            for block in self.blocks:
                x, y = block(x, y)
            # Flatten length-major, as the Flax model does.
            return self.head(x.transpose(1, 2).flatten(1))

    torch.manual_seed(0)
    net = Net().train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(args.batch, args.leads, args.length)
    y = torch.randint(0, 2, (args.batch, args.classes)).float()

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(net(x), y)
        loss.backward()
        opt.step()

    run()
    step_s = best_time(run, args.steps)

    n = 4096
    a = torch.randn(n, n)
    matmul = 2 * n**3 / best_time(lambda: a @ a, 3)
    return dict(step=step_s, matmul_flops=matmul)


def main() -> None:
    args = parse_args()
    flags = models.cpu_xla_flags() if args.xla_flags is None else args.xla_flags
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()

    cfg = models.ModelConfig(width=args.width)
    step_flops = (
        3
        * args.batch
        * models.forward_flops(cfg, n_leads=args.leads, n_classes=args.classes, length=args.length)
    )
    params = models.param_count(cfg, n_leads=args.leads, n_classes=args.classes, length=args.length)
    setup = dict(width=args.width, length=args.length, batch=args.batch, params=params)

    jax_peak = jax_matmul_flops()
    flax = flax_benchmark(args)
    torch = None if args.no_torch else torch_benchmark(args)
    peak = max(jax_peak, torch["matmul_flops"] if torch else 0.0)

    emit("peak_matmul", gflops=peak / 1e9, jax_gflops=jax_peak / 1e9,
         torch_gflops=torch["matmul_flops"] / 1e9 if torch else None, n=4096)  # fmt: skip
    emit("init", eager_s=flax["init_eager"], jit_s=flax["init_jit"],
         speedup=flax["init_eager"] / flax["init_jit"], **setup)  # fmt: skip
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


if __name__ == "__main__":
    main()
