"""One run: train a model on its data subset, evaluate it, and record the result.

`train_and_evaluate(config, run_dir)` is the whole of a run, with or without Ray.
The config is unpacked once here; the functions below take plain arguments.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from scaling import run_data, store
from scaling.budget import Schedule, resolve_schedule
from scaling.checkpoint import Checkpoints
from scaling.config import (
    FROM_PRETRAINED,
    ConfigError,
    EvalConfig,
    RunConfig,
    TrainConfig,
    run_id,
    validate,
)
from scaling.data import Splits, iterate_batches, train_stream
from scaling.data.preprocess import Preprocessing
from scaling.metrics import bce_loss, best_f1_thresholds, bootstrap, classification_report
from scaling.models import ResNet1D, forward_flops, init_model, param_count
from scaling.phases import Phases
from scaling.steps import Steps, TrainState, make_steps
from scaling.tracking import RunInfo, RunTrackers, TrackerSettings
from scaling.transfer import load_pretrained, probe_features, resolve_pretrained

log = logging.getLogger(__name__)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int) -> None:
        super().__init__(f"training loss is not finite at step {step}")
        self.step = step


class Paused(Exception):
    """Training reached the step it was asked to stop at (a rung of successive halving);
    the run is checkpointed there and resumes from it when launched again."""

    def __init__(self, step: int, total_steps: int) -> None:
        super().__init__(f"paused at step {step} of {total_steps}")
        self.step, self.total_steps = step, total_steps


class InjectedFailure(RuntimeError):
    """Raised on purpose at `train.fail_at_step` (fault-injection tests)."""


# ---------------------------------------------------------------------------
# Learning rate and stopping, driven by validation


@dataclass
class Controller:
    """Reduce-on-plateau, warmup-cosine and early stopping; its state is checkpointed."""

    lr: float
    best: float = math.inf  # best value of the monitored metric, as a loss (lower is better)
    best_step: int = -1
    evals_since_best: int = 0
    evals_since_lr_change: int = 0

    def state(self) -> dict[str, Any]:
        return dict(vars(self))

    def update(self, value: float, step: int, t: TrainConfig) -> bool:
        """Take one validation value (lower is better); True if it is a new best."""
        improved = value < self.best
        if improved:
            self.best, self.best_step, self.evals_since_best = value, step, 0
            self.evals_since_lr_change = 0
        else:
            self.evals_since_best += 1
            self.evals_since_lr_change += 1
            if t.schedule == "plateau" and self.evals_since_lr_change >= t.plateau_patience:
                self.lr = max(self.lr * t.plateau_factor, t.min_lr)
                self.evals_since_lr_change = 0
        return improved

    def should_stop(self, t: TrainConfig) -> bool:
        return t.early_stopping > 0 and self.evals_since_best >= t.early_stopping

    def lr_at(self, step: int, total: int, t: TrainConfig) -> float:
        if t.warmup_steps and step < t.warmup_steps:
            return t.lr * (step + 1) / t.warmup_steps
        if t.schedule == "cosine":
            progress = (step - t.warmup_steps) / max(1, total - t.warmup_steps)
            return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))
        return self.lr


def monitored(metric: str, val_loss: float, val_auroc: float) -> float:
    """The early-stopping metric as a loss (lower is better)."""
    if metric == "val_loss":
        return val_loss
    if metric == "val_macro_auroc":
        return -val_auroc if math.isfinite(val_auroc) else math.inf
    raise ValueError(
        f"train.early_stopping_metric must be val_loss or val_macro_auroc, got {metric}"
    )


# ---------------------------------------------------------------------------
# The run


def train_and_evaluate(config: RunConfig, run_dir: str | os.PathLike) -> dict[str, Any]:
    """Train and evaluate one run; write its store files; return its result.

    A finished run (result.json present) is returned as is; an unfinished one resumes
    from its last checkpoint. Divergence is recorded in failure.json and raised.
    """
    return attempt(config, run_dir).result


@dataclass(frozen=True)
class Attempt:
    """What one call did to a run: its result, and whether this call trained it."""

    result: dict[str, Any]
    trained: bool


def attempt(
    config: RunConfig,
    run_dir: str | os.PathLike,
    trackers: TrackerSettings | None = None,
    stop_at: float | None = None,
) -> Attempt:
    """`train_and_evaluate`, telling a run trained now from one found finished.

    With `stop_at` (a fraction of the run's training) an unfinished run trains only to the
    first evaluation at or past it and raises `Paused` there. The run's lock is taken
    before training and `result.json` is looked for again once it is held, so a run that
    another process finished meanwhile is never trained twice. Raises `store.LockHeld`
    while another live process trains it. Only a run trained now reports to the `trackers`
    (grouped by the sweep, its parent folder).
    """
    path = epath.Path(store.absolute(run_dir))
    validate(config)
    store.init_run(path, config)
    if (path / "result.json").exists():
        return Attempt(store.read_json(path / "result.json"), trained=False)
    with store.claim(path):
        if (path / "result.json").exists():  # finished while we waited for the lock
            return Attempt(store.read_json(path / "result.json"), trained=False)
        with _run_log(path):
            doc = store.read_json(path / "config.json")
            info = RunInfo(path.parent.name, path.name, doc["config"])
            tracked = RunTrackers(trackers, info)
            try:
                result = _train_and_evaluate(config, path, tracked.metrics, stop_at)
            except Paused:
                tracked.finish(ok=True)
                raise
            except Diverged as e:
                store.write_failure(path, store.DIVERGED, str(e), step=e.step)
                tracked.finish(ok=False)
                raise
            except Exception as e:
                store.write_failure(
                    path,
                    store.FAILED,
                    f"{type(e).__name__}: {e}",
                    traceback=traceback.format_exc(),
                )
                tracked.finish(ok=False)
                raise
            store.write_result(path, result)
            tracked.result(result)
            tracked.finish(ok=True)
            return Attempt(result, trained=True)


@contextlib.contextmanager
def _run_log(path: epath.Path) -> Iterator[None]:
    """This package's log records and Python warnings go to the run's train.log meanwhile.

    In a bucket (no appends to a live file there) the log is written locally and appended
    to the run's train.log when the attempt ends.
    """
    local = None
    if store.is_remote(path):
        fd, local = tempfile.mkstemp(prefix="scaling-train-", suffix=".log")
        os.close(fd)
    handler = logging.FileHandler(local or os.fspath(path / "train.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger("scaling"), logging.getLogger("py.warnings")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for logger in loggers:
            logger.removeHandler(handler)
            logger.propagate = True
        handler.close()
        if local:
            with open(local) as src, (path / "train.log").open("a") as dst:
                dst.write(src.read())
            os.unlink(local)


def _train_and_evaluate(
    config: RunConfig,
    path: epath.Path,
    on_metrics: Callable[[dict[str, Any]], None],
    stop_at: float | None = None,
) -> dict[str, Any]:
    d, t, e, tr = config.data, config.train, config.eval, config.transfer
    started = time.time()
    phases = Phases()
    splits = run_data.open_splits(d)
    prep: Preprocessing | None = run_data.preprocessing(d)
    n_leads, n_classes = len(d.leads), splits.n_classes
    n_devices = jax.device_count()
    if t.batch_size % n_devices:
        raise ConfigError(
            f"train.batch_size {t.batch_size} is not divisible by {n_devices} devices"
        )
    schedule = resolve_schedule(
        len(splits.train),
        batch_size=t.batch_size,
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        eval_every=t.eval_every,
        checkpoint_every=t.checkpoint_every,
    )
    pause = pause_step(schedule, stop_at)
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[t.dtype]

    model, model_cfg = _build_model(config, store.store_root(path), n_leads, n_classes, dtype)
    shape = {"n_leads": n_leads, "n_classes": n_classes, "length": d.length}
    batches = splits  # what the model reads: the data, or for a probe its features
    if tr.mode == "linear_probe":  # train the head on features of the frozen backbone
        model, batches = probe_features(model, splits, prep, e.batch_size)
        prep = None
    steps = make_steps(model, optimizer=t.optimizer, weight_decay=t.weight_decay)
    pos_weight = _pos_weight(splits.train.labels) if t.class_weighting else np.ones(n_classes)
    state = steps.init(model)
    phases.add("setup", time.time() - started)  # data, model, compiled steps, state

    ckpts = Checkpoints(path / "ckpt")
    controller = Controller(lr=t.lr)
    start_step = 0
    with phases("checkpoint"):
        restored = ckpts.restore_latest(state)
    if restored is not None:
        state, meta = restored
        controller = Controller(**meta["controller"])
        start_step = meta["step"]
        log.info("resuming from checkpoint at step %d", start_step)
    store.record_training(path, start_step)

    stream = train_stream(
        batches.train,
        prep,
        t.batch_size,
        seed=t.init_seed,
        start_step=start_step,
        prefetch=min(8, os.cpu_count() or 1),
    )
    # Steady-state throughput: the first step of an attempt (compilation) is not timed.
    train_time, step = 0.0, start_step
    pending_losses: list[tuple[int, jax.Array]] = []
    stopped_early = False
    try:
        while step < schedule.total_steps:
            if pause is not None and step >= pause:
                with phases("checkpoint"):
                    ckpts.save(step, state, {"step": step, "controller": controller.state()})
                raise Paused(step, schedule.total_steps)
            tick = time.time()
            x, y = next(stream)
            if step == t.fail_at_step:
                raise InjectedFailure(f"fault injected at step {step} (train.fail_at_step)")
            lr = controller.lr_at(step, schedule.total_steps, t)
            state, loss = steps.train_step(state, steps.shard(x), steps.shard(y), lr, pos_weight)
            pending_losses.append((step, loss))
            if step == start_step:  # tracing and compiling (or reading the cache) and the step
                phases.add("first_step", time.time() - tick)
            step += 1
            if step % schedule.eval_every == 0 or step == schedule.total_steps:
                train_loss = _check_finite(pending_losses)
                pending_losses = []
                train_time += (time.time() - tick) if step > start_step + 1 else 0.0
                with phases("validate"):
                    val_scores, val_labels = _predict(
                        steps, state, batches, "val", prep, e.batch_size
                    )
                    val_loss = bce_loss(val_labels, val_scores)
                    val_auroc = _macro_auroc(val_labels, val_scores)
                improved = controller.update(
                    monitored(t.early_stopping_metric, val_loss, val_auroc), step, t
                )
                record = {
                    "step": step,
                    "epoch": step / schedule.steps_per_epoch,
                    "lr": lr,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "val_macro_auroc": val_auroc,
                    "time": time.time() - started,
                    **_throughput((step - start_step - 1) * t.batch_size, train_time),
                }
                with phases("store"):
                    store.append_metrics(path, record)
                on_metrics(record)
                log.info(
                    "step %d train_loss %.4f val_loss %.4f val_macro_auroc %.4f",
                    step,
                    train_loss,
                    val_loss,
                    val_auroc,
                )
                if controller.should_stop(t):
                    stopped_early = True
                with phases("checkpoint"):
                    if improved:
                        ckpts.save_best(state, step)
                    if step % schedule.checkpoint_every == 0 or stopped_early:
                        meta = {"step": step, "controller": controller.state()}
                        ckpts.save(step, state, meta)
                if stopped_early:
                    break
            elif step > start_step + 1:
                train_time += time.time() - tick
        with phases("checkpoint"):
            ckpts.save(step, state, {"step": step, "controller": controller.state()})
            best = state if controller.best_step in (-1, step) else ckpts.restore_best(state)
    finally:
        stream.close()
        ckpts.close()

    with phases("evaluate"):
        result = _evaluate(steps, best, batches, prep, e)
    phases.add("train", train_time)
    wall = time.time() - started
    seen = max(0, step - start_step - 1) * t.batch_size  # the examples `train_time` covers
    result.update(
        {
            "run_id": run_id(config),
            "status": store.FINISHED,
            "train_exams": len(splits.train),
            "pool_exams": len(splits.pool),
            "pool_patients": len(np.unique(splits.pool.patients)),
            "n_params": param_count(model_cfg, **shape),
            "flops_per_example": forward_flops(model_cfg, **shape),
            "train_examples_seen": step * t.batch_size,
            "steps": step,
            "epochs": step / schedule.steps_per_epoch,
            "best_step": controller.best_step,
            "stopped_early": stopped_early,
            "wall_time_s": wall,
            "seconds": phases.breakdown(wall),
            "train_time_s": train_time,
            "examples_per_s": seen / train_time if train_time > 0 else float("nan"),
            "device_kind": jax.devices()[0].device_kind,
            "device_count": n_devices,
            "host": socket.gethostname(),
        }
    )
    return result


def pause_step(schedule: Schedule, stop_at: float | None) -> int | None:
    """The first evaluation step at or past `stop_at` of the training; None if that is its end."""
    if stop_at is None:
        return None
    every = schedule.eval_every
    step = math.ceil(math.ceil(stop_at * schedule.total_steps) / every) * every
    return step if 0 < step < schedule.total_steps else None


def _build_model(
    config: RunConfig, store_root: epath.Path, n_leads: int, n_classes: int, dtype: Any
) -> tuple[ResNet1D, Any]:
    """A fresh model, or a pretrained one with a new head for transfer."""

    d, t, tr = config.data, config.train, config.transfer
    if tr.mode in ("none", "scratch"):
        model = init_model(
            config.model,
            n_leads=n_leads,
            n_classes=n_classes,
            length=d.length,
            seed=t.init_seed,
            dtype=dtype,
        )
        return model, config.model
    if tr.mode in FROM_PRETRAINED:
        return load_pretrained(
            resolve_pretrained(tr.pretrained, store_root),
            n_leads=n_leads,
            n_classes=n_classes,
            length=d.length,
            seed=t.init_seed,
            dtype=dtype,
        )
    raise ValueError(
        f"transfer.mode must be none, scratch, finetune or linear_probe, got {tr.mode}"
    )


def _pos_weight(labels: np.ndarray) -> np.ndarray:
    pos = labels.sum(0)
    return np.clip((len(labels) - pos) / np.maximum(pos, 1), 1.0, 100.0).astype(np.float32)


def _throughput(examples: int, seconds: float) -> dict[str, float]:
    """Steady-state `examples_per_s` of an attempt so far (its first step is not timed)."""
    return {"examples_per_s": examples / seconds} if seconds > 0 else {}


def _check_finite(losses: list[tuple[int, jax.Array]]) -> float:
    """Mean of the pending step losses; raise `Diverged` at the first non-finite one."""
    values = np.asarray(jax.device_get([loss for _, loss in losses]), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise Diverged(losses[bad[0]][0])
    return float(values.mean())


def _macro_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Validation macro AUROC for progress and early stopping (undefined classes skipped)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(labels, scores, [str(i) for i in range(labels.shape[1])])
    return float(report.loc["macro", "auroc"])


def _predict(
    steps: Steps,
    state: TrainState,
    splits: Splits,
    split: str,
    prep: Preprocessing | None,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid scores and labels of a whole split, in order."""
    scores, labels = [], []
    for x, y in iterate_batches(getattr(splits, split), prep, batch_size):
        scores.append(steps.predict(state, x, batch_size))
        labels.append(y)
    return np.concatenate(scores), np.concatenate(labels)


def _evaluate(
    steps: Steps, state: TrainState, splits: Splits, prep: Preprocessing | None, e: EvalConfig
) -> dict[str, Any]:
    """Metrics on val and test: thresholds picked on val (or per split), bootstrap CIs."""
    names = list(splits.class_names)
    val_scores, val_labels = _predict(steps, state, splits, "val", prep, e.batch_size)
    test_scores, test_labels = _predict(steps, state, splits, "test", prep, e.batch_size)
    val_thresholds = best_f1_thresholds(val_labels, val_scores)
    out: dict[str, Any] = {"metrics": {}, "loss": {}, "n_pos": {}, "n_exams": {}}
    for split, labels, scores in (
        ("val", val_labels, val_scores),
        ("test", test_labels, test_scores),
    ):
        thresholds = val_thresholds if e.thresholds == "val" else best_f1_thresholds(labels, scores)
        if e.bootstrap > 0:
            table = bootstrap(
                labels, scores, names, thresholds, n_resamples=e.bootstrap, seed=e.bootstrap_seed
            )
            table["threshold"] = classification_report(labels, scores, names, thresholds)[
                "threshold"
            ]
        else:
            table = classification_report(labels, scores, names, thresholds)
        out["metrics"][split] = {
            str(row): {k: _finite_or_none(v) for k, v in values.items()}
            for row, values in table.to_dict(orient="index").items()
        }
        out["loss"][split] = bce_loss(labels, scores)
        out["n_pos"][split] = dict(zip(names, labels.sum(0).astype(int).tolist(), strict=True))
        out["n_exams"][split] = len(labels)
    return out


def _finite_or_none(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None
