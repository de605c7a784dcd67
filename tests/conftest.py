"""Shared test fixtures: one JAX compilation cache and one Ray head for the whole session."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

# Before anything imports JAX: share compiled programs across tests and subprocesses, in a
# folder of this session's own (a fresh machine's suite starts cold, and so does this one).
CACHE = Path(tempfile.mkdtemp(prefix="scaling-test-jax-cache-"))
atexit.register(shutil.rmtree, CACHE, ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray >= 2.59 turns token auth on for local clusters; say so explicitly so that every
# client (ray CLI, job SDK, drivers) sends the token from ~/.ray/auth_token.
os.environ.setdefault("RAY_AUTH_MODE", "token")
# The test head, its workers and every driver of the suite stay on 127.0.0.1 (Ray's
# single-machine mode; `scaling` sets the same for loopback addresses).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

# A suite started in the background by a non-interactive shell inherits SIGINT ignored, and so
# would every `scaling` it starts (an ignored signal survives exec): the Ctrl-C tests need it
# delivered. A handler here is reset to the default in each child, where Python raises
# KeyboardInterrupt again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def scaling_cmd(
    *args: str, cwd: Path | None = None, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the `scaling` command in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "scaling.cli", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


SCALING = Path(sys.executable).parent / "scaling"
"""The installed console script, beside the interpreter running the tests."""


def scaling_bin(
    *args: str, cwd: Path, timeout: float = 900, wait: bool = True
) -> subprocess.CompletedProcess | subprocess.Popen:
    """The installed `scaling` command typed in `cwd`, as a user would (relative paths).

    With `wait=False` the running process is returned, its output piped as text.
    """
    command = [str(SCALING) if SCALING.exists() else "scaling", *args]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    if not wait:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def race(attempt, contenders: int = 8) -> int:
    """How many of `contenders` threads, released at once, see `attempt()` return True."""
    barrier, winners = threading.Barrier(contenders), []

    def contend() -> None:
        barrier.wait()
        if attempt():
            winners.append(threading.get_ident())

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(winners)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real ECG samples not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory):
    """A real Ray head on 127.0.0.1 (with the job server), stopped at the end of the session.

    Yields (GCS address, dashboard URL). Started with `ray start --head --block` in its own
    process group, so stopping it stops this head only. Every port is chosen free: Ray's
    fixed defaults (the job agent's 52365, the client server's 10001) collide with any other
    Ray on the machine, and a job agent that lost its port cannot take a submission.
    """
    port, dash, agent, client = _free_port(), _free_port(), _free_port(), _free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    subprocess.run(["ray", "get-auth-token", "--generate"], capture_output=True, check=True)
    proc = subprocess.Popen(
        [
            "ray",
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--dashboard-agent-listen-port={agent}",
            f"--ray-client-server-port={client}",
            "--num-cpus=2",
            f"--temp-dir={temp}",
            "--disable-usage-stats",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ},
    )
    address, url = f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}"
    deadline = time.monotonic() + 120
    while True:
        probe = subprocess.run(["ray", "status", f"--address={address}"], capture_output=True)
        if probe.returncode == 0:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("ray head did not start")
        time.sleep(1)
    yield address, url
    # A throwaway head needs no orderly shutdown (SIGTERM took over 10 s): its processes are
    # killed, the workers too (they have process groups of their own; found as descendants).
    family = psutil.Process(proc.pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    proc.wait(timeout=30)


TINY = {
    "sample_rate": 100.0,
    "length": 256,
    "val_fraction": 0.2,
    "test_fraction": 0.2,
    "train.batch_size": 16,
    "max_steps": 30,
    "eval_every": 10,
    "bootstrap": 50,
    "eval.batch_size": 64,
}
"""The demo experiment shrunk for tests: 100 Hz x 256 samples, a few dozen steps."""


SWEEP = """
from scaling.sweep import Resources, Sweep

def get_sweep():
    return Sweep(
        name="{name}",
        experiment="demo",
        axes=({{"subset_size": {sizes}}},),
        fixed={fixed},
        profiles={{"cpu": Resources(num_cpus={cpus}, num_gpus={gpus})}},
        max_retries={retries},
    )
"""


def write_sweep(
    folder: Path,
    name: str,
    sizes: list[int],
    data: Path | str | None = None,
    *,
    cpus: float = 1,
    gpus: float = 0,
    retries: int = 2,
    **fixed,
) -> Path:
    """`folder/<name>.py`: a sweep of the demo experiment at test size (`TINY`) over `sizes`,
    reading `data` (as given: relative paths stay relative), with `fixed` overrides."""
    if data is not None:
        fixed["data.path"] = str(data)
    path = folder / f"{name}.py"
    path.write_text(
        SWEEP.format(
            name=name,
            sizes=list(sizes),
            fixed=repr({**TINY, **fixed}),
            cpus=cpus,
            gpus=gpus,
            retries=retries,
        )
    )
    return path


def tiny_config(data_path: Path | str, **overrides):
    """The demo experiment with `TINY` and `overrides` applied, reading `data_path`, its data
    fingerprint filled in as `scaling sweep` does (so that ids match the command's)."""
    from scaling.config import override
    from scaling.sweep import load_experiment, locate_data

    cfg = override(load_experiment("demo"), {**TINY, "data.path": str(data_path), **overrides})
    return locate_data(cfg, Path.cwd())


@pytest.fixture(scope="session")
def code_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset in the CODE layout (400 exams of 250 patients, 1024 samples)."""
    from scaling.data.synthetic import write_code_dataset

    path = tmp_path_factory.mktemp("code_data")
    write_code_dataset(path, n_exams=400, n_patients=250, length=1024, seed=0)
    return path


SMALL_STORE = {"max_steps": 120, "eval_every": 40, "bootstrap": 100}


@pytest.fixture(scope="session")
def small_store(code_data, tmp_path_factory) -> Path:
    """A store with one finished sweep, "small": 4 subset sizes x 2 seeds, trained in-process."""
    from scaling.config import run_id
    from scaling.train import train_and_evaluate

    root = tmp_path_factory.mktemp("store")
    for size in (20, 40, 80, 160):
        for seed in (0, 1):
            cfg = tiny_config(
                code_data, subset_size=size, data_seed=seed, init_seed=seed, **SMALL_STORE
            )
            train_and_evaluate(cfg, root / "small" / run_id(cfg))
    return root
