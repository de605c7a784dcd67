"""How much training a run does: its length in steps and examples, and its FLOPs.

The one definition of each, shared by the trainer (`train.py`), the cost model before
launch (`cost.py`, `plan.py`) and the compute axis of the laws (`laws/compute.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaling.config import ConfigError
from scaling.data.dataset import DataError

TRAIN_FLOPS_PER_FORWARD = 3.0  # a training step: forward + backward (about twice a forward)


@dataclass(frozen=True)
class Schedule:
    total_steps: int
    steps_per_epoch: int
    eval_every: int
    checkpoint_every: int


def resolve_schedule(
    n_train: int,
    *,
    batch_size: int,
    max_epochs: int,
    max_steps: int,
    eval_every: int = 0,
    checkpoint_every: int = 0,
) -> Schedule:
    """Steps to train, evaluate and checkpoint from epochs, steps and the subset size
    (`train.*` fields of the same names; 0 = unset)."""
    if n_train <= 0:
        raise DataError("the training subset is empty")
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    limits = []
    if max_epochs > 0:
        limits.append(max_epochs * steps_per_epoch)
    if max_steps > 0:
        limits.append(max_steps)
    if not limits:
        raise ConfigError(
            "set train.max_epochs or train.max_steps (early stopping alone never ends)"
        )
    total = min(limits)
    eval_every = min(eval_every or steps_per_epoch, total)
    return Schedule(total, steps_per_epoch, eval_every, checkpoint_every or eval_every)


def training_examples(n_train: int, *, batch_size: int, max_epochs: int, max_steps: int) -> int:
    """Examples a run sees at most (early stopping may end it sooner). Without the training
    set's size (`n_train` 0) only `max_steps` bounds it; 0 when nothing does (unknown)."""
    if n_train > 0 and (max_epochs > 0 or max_steps > 0):
        length = resolve_schedule(
            n_train, batch_size=batch_size, max_epochs=max_epochs, max_steps=max_steps
        )
        return length.total_steps * batch_size
    return max_steps * batch_size if max_steps > 0 else 0


def training_flops(forward_flops_per_example: float, examples: float) -> float:
    """FLOPs of training on `examples` with a model of that forward cost per example."""
    return TRAIN_FLOPS_PER_FORWARD * forward_flops_per_example * examples
