"""Experiment trackers (TensorBoard, W&B, MLflow): opt-in mirrors of what a run writes.

The store stays the source of truth. A run trained now sends its resolved config and run
id when it starts, every evaluation's metrics (the `metrics.jsonl` record) by step, and
its final result with CIs when it ends; runs are grouped by sweep. A tracker that fails
is dropped with a warning; the run goes on. Tracker packages are imported lazily, only
when chosen, and their absence is found on the driver before any run starts.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scaling.errors import ScalingError

log = logging.getLogger(__name__)

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
"""Tracker name -> the package (and pip extra) it needs."""

ENV_PREFIXES = ("WANDB_", "MLFLOW_")
"""The launching shell's variables of these prefixes travel to the workers."""


class TrackerError(ScalingError):
    """A tracker was asked for that cannot be used (unknown, or its package is missing)."""


@dataclass(frozen=True)
class TrackerSettings:
    """Which trackers a run reports to and where: a run-time option, not part of a run id.

    `dir` holds TensorBoard's `<sweep>/<run_id>/tensorboard` and W&B's `wandb/` (unless
    WANDB_DIR is set); `env` is the launching shell's WANDB_*/MLFLOW_* variables, for the
    workers, with MLFLOW_TRACKING_URI defaulting to the SQLite file `<dir>/mlflow.db`.
    """

    names: tuple[str, ...] = ()
    dir: str = ""
    env: Mapping[str, str] = field(default_factory=dict)


def settings(
    names: list[str], dir: str, environ: Mapping[str, str], *, check_packages: bool = True
) -> TrackerSettings:
    """The chosen trackers, checked on the driver (one-line error if a package is missing)."""
    names = list(dict.fromkeys(names))
    for name in names:
        if name not in PACKAGES:
            raise TrackerError(f"unknown tracker '{name}'; choose from {', '.join(PACKAGES)}")
        if not check_packages:
            continue
        try:
            importlib.import_module(PACKAGES[name])
        except ImportError as e:
            raise TrackerError(
                f"--tracker {name} needs the {PACKAGES[name]} package "
                f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                f'install it with: pip install -e ".[{name}]"'
            ) from None
    env = {k: v for k, v in environ.items() if k.startswith(ENV_PREFIXES)}
    if "mlflow" in names and not env.get("MLFLOW_TRACKING_URI"):
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(dir) / 'mlflow.db'}"
        if check_packages:  # create its tables once here, not in racing workers
            from mlflow.tracking import MlflowClient

            Path(dir).mkdir(parents=True, exist_ok=True)
            MlflowClient(env["MLFLOW_TRACKING_URI"]).search_experiments(max_results=1)
    return TrackerSettings(tuple(names), dir, env)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested dicts as `a/b/c` keys and their leaves."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten(value, f"{name}/")
        else:
            yield name, value


def scalars(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a nested record (bools and strings left out)."""
    return {
        k: float(v)
        for k, v in flatten(tree, prefix)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def result_scalars(result: Mapping[str, Any]) -> dict[str, float]:
    """A result's numbers: `result/metrics/<split>/<class>/<metric>` (CIs: `<metric>_low/_high`
    as the bootstrap names them), `result/loss/<split>`, and the run's totals."""
    return scalars({k: v for k, v in result.items() if k not in ("n_pos", "n_exams")}, "result/")


@dataclass(frozen=True)
class RunInfo:
    """What a tracker is told about a run when it starts."""

    sweep: str
    run_id: str
    config: dict[str, Any]  # the resolved config, as in config.json


class Tracker(Protocol):
    """One experiment tracker's view of one run."""

    def log_metrics(self, step: int, values: dict[str, float]) -> None: ...

    def log_result(self, step: int, values: dict[str, float]) -> None: ...

    def finish(self, ok: bool) -> None: ...


# ---------------------------------------------------------------------------
# The trackers


class TensorBoard:
    """Event files in `<dir>/<sweep>/<run_id>/tensorboard` (scalars are float32 there)."""

    def __init__(self, run: RunInfo, s: TrackerSettings) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event, self._summary = Event, Summary
        self.logdir = Path(s.dir) / run.sweep / run.run_id / "tensorboard"
        self._writer = EventFileWriter(str(self.logdir))
        text = json.dumps({"run_id": run.run_id, "config": run.config}, indent=1)
        config = Summary.Value(
            tag="config",
            tensor=TensorProto(dtype=7, string_val=[text.encode()]),  # DT_STRING, text plugin
            metadata=SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text")),
        )
        self._write(0, [config])

    def _write(self, step: int, values: list[Any]) -> None:
        summary = self._summary(value=values)
        self._writer.add_event(self._event(wall_time=time.time(), step=step, summary=summary))
        self._writer.flush()

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        self._write(step, [self._summary.Value(tag=k, simple_value=v) for k, v in values.items()])

    log_result = log_metrics

    def finish(self, ok: bool) -> None:
        self._writer.close()


class WandB:
    """One W&B run per store run: name = run id, group = sweep, the config as its config.

    W&B's own variables (WANDB_MODE, WANDB_PROJECT, WANDB_ENTITY, WANDB_DIR, ...) apply;
    the project defaults to `scaling` and the files to `<dir>/wandb`.
    """

    def __init__(self, run: RunInfo, s: TrackerSettings) -> None:
        import wandb

        self._run = wandb.init(
            project=s.env.get("WANDB_PROJECT", "scaling"),
            group=run.sweep,
            name=run.run_id,
            job_type="train",
            config={"run_id": run.run_id, **run.config},
            dir=None if "WANDB_DIR" in s.env else s.dir,
            reinit="create_new",
        )

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        self._run.log(values, step=step)

    def log_result(self, step: int, values: dict[str, float]) -> None:
        self._run.summary.update(values)

    def finish(self, ok: bool) -> None:
        self._run.finish(exit_code=0 if ok else 1)


class MLflow:
    """One MLflow run per store run in the experiment named after the sweep; run name =
    run id, the flattened config as params, at the settings' MLFLOW_TRACKING_URI."""

    BATCH = 100  # params per request (MLflow's limit); metrics go 1,000 at a time

    def __init__(self, run: RunInfo, s: TrackerSettings) -> None:
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self._client = client = MlflowClient(tracking_uri=s.env["MLFLOW_TRACKING_URI"])
        experiment = client.get_experiment_by_name(run.sweep)
        if experiment is None:
            try:
                experiment_id = client.create_experiment(run.sweep)
            except MlflowException:  # another worker created it meanwhile
                experiment_id = client.get_experiment_by_name(run.sweep).experiment_id
        else:
            experiment_id = experiment.experiment_id
        tags = {"scaling.run_id": run.run_id, "scaling.sweep": run.sweep}
        self._id = client.create_run(experiment_id, run_name=run.run_id, tags=tags).info.run_id
        params = [Param(k, str(v)) for k, v in flatten(run.config)]
        for i in range(0, len(params), self.BATCH):
            client.log_batch(self._id, params=params[i : i + self.BATCH])

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 10 * self.BATCH):
            self._client.log_batch(self._id, metrics=metrics[i : i + 10 * self.BATCH])

    log_result = log_metrics

    def finish(self, ok: bool) -> None:
        self._client.set_terminated(self._id, "FINISHED" if ok else "FAILED")


TRACKERS: dict[str, Callable[[RunInfo, TrackerSettings], Tracker]] = {
    "tensorboard": TensorBoard,
    "wandb": WandB,
    "mlflow": MLflow,
}


# ---------------------------------------------------------------------------
# All of a run's trackers, failures contained


class RunTrackers:
    """The chosen trackers of one run; each failure is a warning and drops that tracker."""

    def __init__(self, s: TrackerSettings | None, run: RunInfo) -> None:
        self._trackers: dict[str, Tracker] = {}
        self._step = 0
        for name in s.names if s else ():
            self._call(name, self._start, name, run, s)

    def _start(self, name: str, run: RunInfo, s: TrackerSettings) -> None:
        self._trackers[name] = TRACKERS[name](run, s)

    def _call(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as e:
            self._trackers.pop(name, None)
            message = f"tracker {name} failed and is left out of this run: {type(e).__name__}: {e}"
            log.warning(message.splitlines()[0])
            print(f"warning: {message.splitlines()[0]}", file=sys.stderr)

    def metrics(self, record: dict[str, Any]) -> None:
        """One `metrics.jsonl` record: its numbers at its step."""
        self._step = int(record["step"])
        values = scalars({k: v for k, v in record.items() if k != "step"})
        for name, tracker in list(self._trackers.items()):
            self._call(name, tracker.log_metrics, self._step, values)

    def result(self, result: dict[str, Any]) -> None:
        values = result_scalars(result)
        step = int(result.get("steps", self._step))
        for name, tracker in list(self._trackers.items()):
            self._call(name, tracker.log_result, step, values)

    def finish(self, ok: bool) -> None:
        for name, tracker in list(self._trackers.items()):
            self._call(name, tracker.finish, ok)
        self._trackers.clear()
