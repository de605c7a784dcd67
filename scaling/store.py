"""The results store: one directory per run, named by its config hash.

    <store>/<sweep>/<run_id>/
        config.json      the resolved config (+ code version), written first
        metrics.jsonl    append-only: one line per evaluation during training
        result.json      written atomically, only when the run finished
        failure.json     why the run did not finish (failed, diverged, or pruned by halving)
        trainings.jsonl  one line per attempt that trained (start step, pid, host)
        ckpt/            Orbax checkpoints
        lock             held while a process trains the run
        train.log        the run's own log

A run without `result.json` is not finished; nothing partial is ever read as a result.
Paths go through `etils.epath`, so a store can live on a shared filesystem or in a bucket
(`s3://`, `gs://`, through fsspec). Locks are created atomically on both: `O_EXCL` on a
filesystem, a create-if-absent PUT (`If-None-Match: *` on S3, generation 0 on GCS) on a
bucket. On a bucket every JSON is one whole-object PUT, which replaces atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
from etils import epath

from scaling import __version__
from scaling.config import RunConfig, from_dict, run_id, to_dict

# Bucket directory listings are never cached (epath and this module share fsspec's
# filesystems): other processes write the same store, and a cached listing would hide a
# result or a lock that appeared since.
for _protocol in ("s3", "gcs", "gs"):
    fsspec.config.conf.setdefault(_protocol, {}).setdefault("use_listings_cache", False)

LOCK_STALE_AFTER_S = 120.0
_HEARTBEAT_S = 10.0

FINISHED, FAILED, DIVERGED, PRUNED, RUNNING, PENDING = (
    "finished",
    "failed",
    "diverged",
    "pruned",  # a tuning point stopped by successive halving (see scaling/halving.py)
    "running",
    "pending",
)


class LockHeld(RuntimeError):
    """Another live process is training this run."""


def absolute(path: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """A local path made absolute against `base` (default: the working directory); URLs as is.

    The CLI resolves every path a user gives with this, once: Orbax, Ray workers (whose
    working directory differs) and cluster jobs only ever see absolute paths.
    """
    text = os.fspath(path)
    if "://" in text:
        return text
    return os.path.normpath(os.path.join(os.fspath(base or os.getcwd()), os.path.expanduser(text)))


def run_path(store: str | os.PathLike, sweep: str, rid: str) -> epath.Path:
    """The directory of run `rid` of `sweep`: the one place the store layout is spelled."""
    return epath.Path(store) / sweep / rid


def run_dir(store: str | os.PathLike, sweep: str, cfg: RunConfig) -> epath.Path:
    return run_path(store, sweep, run_id(cfg))


def store_root(path: epath.Path) -> epath.Path:
    """The store a run directory belongs to (inverse of `run_path`)."""
    return path.parent.parent


def is_remote(path: str | os.PathLike) -> bool:
    """Whether `path` is on an object store (a URL such as `s3://bucket/prefix`)."""
    return "://" in os.fspath(path)


def filesystem(path: str | os.PathLike) -> tuple[Any, str]:
    """The fsspec filesystem of a bucket path, and the path as that filesystem names it."""
    return fsspec.core.url_to_fs(os.fspath(path))


def write_json_atomic(path: epath.Path, obj: Any) -> None:
    """Write JSON to a temporary file beside `path`, then replace `path` with it atomically.

    An existing file is replaced (a re-launch rewrites failure.json); readers see the old
    or the new content, never a mix. On an object store one PUT of the whole object is
    already atomic, so it is written in place.
    """
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default)
    if is_remote(path):
        path.write_text(text)
        return
    tmp = path.parent / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            if tmp.exists():
                tmp.unlink()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_text(path: epath.Path) -> str:
    """A file's whole text; on a bucket one GET, a snapshot even while another process
    replaces the object (a ranged read of a replaced object fails instead)."""
    if is_remote(path):
        fs, key = filesystem(path)
        return fs.cat_file(key).decode()
    return path.read_text()


def read_json(path: epath.Path) -> Any:
    return json.loads(read_text(path))


def init_run(path: epath.Path, cfg: RunConfig) -> None:
    """Create the run dir and write its config (once; it never changes)."""
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "config.json").exists():
        write_json_atomic(
            path / "config.json",
            {"run_id": run_id(cfg), "code_version": __version__, "config": to_dict(cfg)},
        )


def load_config(path: epath.Path) -> RunConfig:
    return from_dict(read_json(path / "config.json")["config"])


def append_metrics(path: epath.Path, record: dict[str, Any]) -> None:
    line = json.dumps(record, default=_json_default) + "\n"
    with (path / "metrics.jsonl").open("a") as f:
        f.write(line)


def read_metrics(path: epath.Path) -> list[dict[str, Any]]:
    """Every complete line of metrics.jsonl (a torn last line is ignored)."""
    f = path / "metrics.jsonl"
    if not f.exists():
        return []
    out = []
    for line in read_text(f).splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def write_result(path: epath.Path, result: dict[str, Any]) -> None:
    write_json_atomic(path / "result.json", result)
    failure = path / "failure.json"
    if failure.exists():
        failure.unlink()


def write_failure(path: epath.Path, status: str, message: str, **extra: Any) -> None:
    write_json_atomic(
        path / "failure.json", {"status": status, "message": message, "time": time.time(), **extra}
    )


def record_training(path: epath.Path, start_step: int) -> None:
    """Note that an attempt started training (tests and audits count these)."""
    entry = {"start_step": start_step, "pid": os.getpid(), "host": socket.gethostname()}
    entry["time"] = time.time()
    with (path / "trainings.jsonl").open("a") as f:
        f.write(json.dumps(entry) + "\n")


def count_trainings(path: epath.Path) -> int:
    f = path / "trainings.jsonl"
    return len(read_text(f).splitlines()) if f.exists() else 0


# ---------------------------------------------------------------------------
# Claiming a run


def _lock_is_stale(lock: epath.Path) -> bool:
    try:
        info = read_json(lock)
    except (FileNotFoundError, json.JSONDecodeError):
        return True  # half-written or already gone
    if info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1))):
        return True
    return time.time() - float(info.get("heartbeat", 0)) > LOCK_STALE_AFTER_S


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_body() -> str:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()})


def _try_create(lock: epath.Path) -> bool:
    """Create `lock` only if absent, atomically; False when it exists."""
    if is_remote(lock):  # a conditional PUT: If-None-Match: * (S3), ifGenerationMatch=0 (GCS)
        fs, key = filesystem(lock)
        try:
            fs.pipe_file(key, _lock_body().encode(), mode="create")
        except FileExistsError:
            return False
        return True
    # Written whole beside it, then hard-linked into place: the link is the atomic
    # create-if-absent, and no reader ever sees a lock without its body.
    tmp = lock.parent / f".{lock.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(_lock_body())
    try:
        os.link(tmp, lock)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def _take_over(lock: epath.Path) -> bool:
    """Replace a stale lock by ours; False when another process changed it first.

    On S3 the lock is overwritten only if it is still the version judged stale (a PUT with
    `If-Match: <etag>`), so of two processes taking over the same lock one wins. Elsewhere
    the taker first creates `lock.takeover` (create-only, so one process at a time), judges
    the lock again under it, then removes it and creates its own: without that guard, a
    process that judged the old lock stale could remove the one just taken over.
    """
    if os.fspath(lock).startswith("s3://"):
        fs, key = filesystem(lock)
        try:
            etag = fs.info(key)["ETag"]
            if not _lock_is_stale(lock):  # the content now, at least as new as `etag`
                return False
            fs.pipe_file(key, _lock_body().encode(), IfMatch=etag)
        except OSError:  # gone (not found) or changed meanwhile (precondition failed)
            return False
        return True
    guard = lock.parent / f"{lock.name}.takeover"
    if not _try_create(guard):
        if not _lock_is_stale(guard):  # another process is taking over right now
            return False
        with contextlib.suppress(FileNotFoundError):
            guard.unlink()  # left by a process that died mid-takeover
        if not _try_create(guard):
            return False
    try:
        if not _lock_is_stale(lock):
            return False
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        return _try_create(lock)
    finally:
        with contextlib.suppress(FileNotFoundError):
            guard.unlink()


@contextlib.contextmanager
def claim(path: epath.Path) -> Iterator[None]:
    """Hold the run's lock while training; a stale lock of a dead process is taken over.

    Raises `LockHeld` when a live process holds it. A heartbeat thread keeps the lock
    fresh so that other hosts can tell a live holder from a dead one.
    """
    lock = path / "lock"
    if not _try_create(lock):
        if not _lock_is_stale(lock):
            raise LockHeld(f"run {path.name} is being trained by another process")
        if not _take_over(lock):
            raise LockHeld(f"run {path.name} was claimed by another process")
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(_HEARTBEAT_S):
            with contextlib.suppress(OSError):
                lock.write_text(_lock_body())

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{path.name}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


# ---------------------------------------------------------------------------
# Reading a store


@dataclass(frozen=True)
class RunState:
    run_id: str
    sweep: str
    path: epath.Path
    status: str
    latest: dict[str, Any]  # last metrics.jsonl record, {} if none


def run_status(path: epath.Path) -> str:
    if (path / "result.json").exists():
        return FINISHED
    lock = path / "lock"
    if lock.exists() and not _lock_is_stale(lock):
        return RUNNING
    failure = path / "failure.json"
    if failure.exists():
        try:
            return read_json(failure).get("status", FAILED)
        except FileNotFoundError:  # removed meanwhile: the run has just finished
            return FINISHED if (path / "result.json").exists() else PENDING
    return PENDING


def scan(store: str | os.PathLike, sweep: str | None = None) -> list[RunState]:
    """Every run dir under the store (or one sweep of it)."""
    root = epath.Path(store)
    if not root.exists():
        return []
    sweeps = [root / sweep] if sweep else [p for p in sorted(root.iterdir()) if p.is_dir()]
    states = []
    for sweep_dir in sweeps:
        if not sweep_dir.exists():
            continue
        for path in sorted(sweep_dir.iterdir()):
            if (path / "config.json").exists():
                metrics = read_metrics(path)
                states.append(
                    RunState(
                        run_id=path.name,
                        sweep=sweep_dir.name,
                        path=path,
                        status=run_status(path),
                        latest=metrics[-1] if metrics else {},
                    )
                )
    return states
