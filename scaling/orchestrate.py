"""Running sweeps on Ray: one task per run, resumable, fault tolerant, with progress.

The only module that imports `ray`. Workers get a run's config and its run dir in
the store; they read data from disk themselves and never receive arrays by value.
"""

from __future__ import annotations

import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from etils import epath

from scaling import store
from scaling.config import from_dict, to_dict
from scaling.progress import view_for
from scaling.sweep import REPO_ROOT, PlannedRun, Resources, Sweep, SweepError
from scaling.tracking import TrackerSettings

LOCK_POLL_S = 2.0
PAUSED = "paused"  # a task's answer for a run that stopped at its rung (not a store status)
JOB_AGENT_WAIT_S = 60.0  # a fresh head's job agent registers within seconds
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Ray's single-machine mode: every server of a node binds to 127.0.0.1, not to the
machine's network address (Ray reads it when it is imported)."""


@dataclass
class SweepSummary:
    finished: list[str] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)  # trained (to the end) by this invocation
    retried: list[str] = field(default_factory=list)  # had failed before; launched again
    waited: list[str] = field(default_factory=list)  # found finished by another process
    failed: dict[str, str] = field(default_factory=dict)  # run id -> error summary
    diverged: dict[str, str] = field(default_factory=dict)
    paused: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (step, of steps)
    pruned: list[str] = field(default_factory=list)  # stopped by successive halving before

    @property
    def ok(self) -> bool:
        return not self.failed


def is_loopback(address: str | None) -> bool:
    """Whether `address` is this machine's loopback (None: an embedded cluster, which is)."""
    if not address:
        return True
    host = urlsplit(address if "://" in address else f"ray://{address}").hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def import_ray(address: str | None) -> ModuleType:
    """Ray, imported so that a cluster on this machine stays on the loopback interface.

    Must run before anything else in the process imports Ray; workers inherit the setting.
    """
    if is_loopback(address):
        os.environ.update(LOOPBACK_ONLY)
    import ray

    return ray


def _default_cache(store_path: str) -> str:
    """The persistent compilation cache: in a local store, else in the user's cache dir."""
    if "://" in store_path:
        return os.fspath(Path.home() / ".cache" / "scaling" / "jax")
    return os.fspath(Path(store_path).resolve() / ".jax_cache")


def worker_env(compile_cache: str, resources: Resources) -> dict[str, str]:
    """Environment of every worker: the shared compilation cache, accelerator memory sharing."""
    env = {
        "JAX_COMPILATION_CACHE_DIR": compile_cache,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    }
    if resources.memory_fraction > 0:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{resources.memory_fraction:.3f}"
    return env


def connect(address: str | None, *, env: dict[str, str], num_cpus: int | None = None) -> Any:
    """An existing cluster at `address`, or a new embedded one on 127.0.0.1; returns `ray`."""
    ray = import_ray(address)
    runtime_env = {"env_vars": env}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            runtime_env=runtime_env,
            log_to_driver=False,
            configure_logging=False,
        )
    return ray


def check_resources(ray: Any, resources: Resources) -> None:
    """Fail before anything starts when no node of the cluster can host one run."""
    wanted = {"CPU": resources.num_cpus, "GPU": resources.num_gpus, **resources.custom}
    wanted = {k: v for k, v in wanted.items() if v > 0}
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if not any(all(node.get(k, 0) >= v for k, v in wanted.items()) for node in nodes):
        have = [{k: v for k, v in n.items() if not k.startswith("node:")} for n in nodes]
        raise SweepError(f"no node of the cluster can provide {wanted} per run; nodes have {have}")


def _run_task(
    cfg: dict[str, Any],
    run_dir: str,
    trackers: TrackerSettings | None = None,
    stop_at: float | None = None,
) -> dict[str, Any]:
    """Train one run to completion (or to `stop_at` of it) in a worker, waiting if another
    process holds it."""
    from scaling.train import Diverged, Paused, attempt

    config = from_dict(cfg)
    waited = False
    while True:
        try:
            done = attempt(config, run_dir, trackers, stop_at)
        except Paused as e:
            return {"status": PAUSED, "step": e.step, "total_steps": e.total_steps}
        except store.LockHeld:
            waited = True
            time.sleep(LOCK_POLL_S)
            continue
        except Diverged as e:
            return {"status": store.DIVERGED, "message": str(e)}
        return {
            "status": store.FINISHED,
            "wall_time_s": done.result.get("wall_time_s"),
            "trained": done.trained,
            "waited": waited and not done.trained,
        }


def _triage(
    sweep: Sweep, runs: list[PlannedRun], root: str, retry_diverged: bool, summary: SweepSummary
) -> list[tuple[PlannedRun, epath.Path]]:
    """The runs to launch: unfinished ones (failed ones again, diverged ones if asked, pruned
    ones when the sweep no longer halves)."""
    todo = []
    for run in runs:
        path = store.run_path(root, sweep.name, run.run_id)
        status = store.run_status(path)
        if status == store.FINISHED:
            summary.finished.append(run.run_id)
            continue
        if status == store.DIVERGED and not retry_diverged:
            summary.diverged[run.run_id] = store.read_json(path / "failure.json")["message"]
            continue
        if status == store.PRUNED and sweep.halving:
            summary.pruned.append(run.run_id)
            continue
        if status in (store.FAILED, store.DIVERGED, store.PRUNED):
            summary.retried.append(run.run_id)
        todo.append((run, path))
    return todo


def run_sweep(
    sweep: Sweep,
    runs: list[PlannedRun],
    store_path: str,
    *,
    address: str | None = None,
    max_concurrent: int | None = None,
    num_cpus: int | None = None,
    compile_cache: str | None = None,
    retry_diverged: bool = False,
    report_every: float | None = None,
    trackers: TrackerSettings | None = None,
    stop_at: float | None = None,
) -> SweepSummary:
    """Run every unfinished run of `runs` on Ray and wait for all of them.

    Finished runs are skipped, failed ones are launched again and resume from their
    checkpoints, diverged ones are kept (a result of their config) unless
    `retry_diverged`. Runs trained now report to `trackers` (their settings and the
    launching shell's tracker variables travel to every worker). Progress goes to stderr
    every `report_every` seconds (default: the view's), live on a terminal. With `stop_at`
    (a rung of successive halving) runs train only to that fraction of their training and
    pause there (`SweepSummary.paused`); pruned runs of a halving sweep stay. Ctrl-C cancels
    the tasks in flight (their locks then go stale and the next launch resumes them).
    """
    resources = sweep.resources
    store_path = store.absolute(store_path)
    summary = SweepSummary()
    todo = _triage(sweep, runs, store_path, retry_diverged, summary)
    view = view_for(sys.stderr, report_every)
    if not todo:
        ended = "finished, diverged or pruned" if summary.pruned else "finished or diverged"
        view.message(f"sweep {sweep.name}: all {len(runs)} runs already {ended}")
        return summary
    if summary.retried:
        view.message(
            f"sweep {sweep.name}: retrying {len(summary.retried)} run(s) that did not finish "
            f"before ({', '.join(summary.retried)})"
        )

    env = worker_env(compile_cache or _default_cache(store_path), resources)
    ray = connect(address, env={**(trackers.env if trackers else {}), **env}, num_cpus=num_cpus)
    try:
        check_resources(ray, resources)
        for run, path in todo:
            store.init_run(path, run.config)
        task = ray.remote(_run_task).options(
            num_cpus=resources.num_cpus,
            num_gpus=resources.num_gpus,
            resources=resources.custom or None,
            max_retries=sweep.max_retries,
            retry_exceptions=False,
        )
        limit = max_concurrent or len(todo)
        concurrency = min(limit, _cluster_slots(ray, resources))
        started = time.monotonic()
        queue = list(todo)
        in_flight: dict[Any, tuple[str, epath.Path]] = {}
        durations: list[float] = []
        planned = {run.run_id for run in runs}
        try:
            with view:
                while queue or in_flight:
                    while queue and len(in_flight) < limit:
                        run, path = queue.pop(0)
                        ref = task.remote(to_dict(run.config), os.fspath(path), trackers, stop_at)
                        in_flight[ref] = (run.run_id, path)
                    done, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
                    for ref in done:
                        rid, path = in_flight.pop(ref)
                        _collect(ray, ref, rid, path, summary, durations)
                    if view.due(force=not (queue or in_flight)):
                        view.show(
                            [s for s in store.scan(store_path, sweep.name) if s.run_id in planned],
                            planned=len(runs),
                            elapsed=time.monotonic() - started,
                            concurrency=concurrency,
                            mean_run_s=statistics.mean(durations) if durations else None,
                        )
        except KeyboardInterrupt:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            print(
                f"\ninterrupted: cancelled {len(in_flight)} runs in flight; "
                "launch the sweep again to resume them",
                file=sys.stderr,
            )
            raise
    finally:
        ray.shutdown()
    return summary


def _cluster_slots(ray: Any, resources: Resources) -> int:
    total = ray.cluster_resources()
    slots = [total.get("CPU", 0) / resources.num_cpus] if resources.num_cpus else []
    if resources.num_gpus:
        slots.append(total.get("GPU", 0) / resources.num_gpus)
    return max(1, int(min(slots))) if slots else 1


def _collect(
    ray: Any,
    ref: Any,
    rid: str,
    path: epath.Path,
    summary: SweepSummary,
    durations: list[float],
) -> None:
    try:
        out = ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = e.cause if e.cause is not None else e
        summary.failed[rid] = f"{type(cause).__name__}: {cause}".splitlines()[0]
        return
    except (
        ray.exceptions.WorkerCrashedError,
        ray.exceptions.NodeDiedError,
        ray.exceptions.TaskCancelledError,
    ) as e:
        summary.failed[rid] = f"{type(e).__name__} after all retries"
        store.write_failure(path, store.FAILED, summary.failed[rid])
        return
    if out["status"] == store.DIVERGED:
        summary.diverged[rid] = out["message"]
        return
    if out["status"] == PAUSED:
        summary.paused[rid] = (out["step"], out["total_steps"])
        return
    summary.finished.append(rid)
    if out.get("trained"):
        summary.trained.append(rid)
    if out.get("waited"):
        summary.waited.append(rid)
    if out.get("wall_time_s"):
        durations.append(float(out["wall_time_s"]))


# ---------------------------------------------------------------------------
# Cluster batch jobs


class SubmitError(RuntimeError):
    """The cluster did not take the job."""


def submit(
    sweep_name: str,
    *,
    address: str,
    store_path: str,
    extra_args: list[str],
    working_dir: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
) -> str:
    """Submit `scaling sweep` as a Ray job; returns the job id.

    The working directory travels with the job and is its working directory there: a
    sweep file inside it is named relative to it, every other path absolute. `env`
    (the trackers' variables) is set for the job's driver and workers.
    """
    from ray.job_submission import JobSubmissionClient

    if sweep_name.endswith(".py"):
        sweep_file = Path(sweep_name).resolve()
        if sweep_file.is_relative_to(working_dir.resolve()):
            sweep_name = os.fspath(sweep_file.relative_to(working_dir.resolve()))
    client = JobSubmissionClient(address)
    command = shlex.join(
        [
            "python",
            "-m",
            "scaling.cli",
            "sweep",
            sweep_name,
            "--store",
            store.absolute(store_path),
            "--address",
            "auto",
            *extra_args,
        ]
    )
    runtime_env = {
        "working_dir": os.fspath(working_dir),
        "excludes": ["/.git", "/store", "/demo_out", "/data", "*.hdf5", "**/__pycache__"],
    }
    if env:
        runtime_env["env_vars"] = dict(env)
    deadline = time.monotonic() + JOB_AGENT_WAIT_S
    while True:
        try:
            return client.submit_job(entrypoint=command, runtime_env=runtime_env)
        except RuntimeError as e:  # the head's job agent is still starting: Ray says to retry
            if "No available agent" not in str(e):
                raise
            if time.monotonic() > deadline:
                raise SubmitError(
                    f"the Ray head at {address} has no job agent after {JOB_AGENT_WAIT_S:.0f} s; "
                    "if another Ray runs on that machine, its job agent may hold port 52365: "
                    "start the head with --dashboard-agent-listen-port=<a free port>"
                ) from e
            time.sleep(1.0)
