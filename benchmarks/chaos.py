"""Chaos: a seeded storm of faults during a sweep leaves every result as an undisturbed sweep's.

Starts a Ray head on 127.0.0.1 (its own ports and temp dir, every process ended by id at the
end), writes small synthetic CODE-layout data, runs a reference sweep of `--runs` tiny runs
undisturbed, then runs the same sweep into a second store while a seeded scheduler injects
`--faults` faults at random moments (if the sweep finishes first, it runs again into a third
store, and so on, so that a fast machine takes the same storm), drawn from:

- `worker`: SIGKILL of a training worker, in whatever phase it is (start-up and data loading,
  a step, an evaluation, a checkpoint or result write);
- `driver`: SIGKILL of the `scaling sweep` driver, then a relaunch, sometimes two at once;
- `checkpoint`: the newest committed checkpoint of a running run damaged (a file removed or
  truncated), then its worker killed, so that the retry must fall back or restart cleanly;
- `stale_lock`: a lock of a dead process on another host, on a run not yet started;
- `node` (with `--two-nodes` only): the second node's raylet and workers killed together,
  then a replacement node joining.

`--two-nodes` starts the head and a second node (`ray start --address`) on 127.0.0.1, each
with one CPU. Two nodes on one machine need Ray's cluster mode
(`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1`; single-machine mode takes no worker nodes), and in
that mode Ray also listens on 0.0.0.0 and the machine's network address: so it is an
opt-in of this script, never used by the test suite, whose clusters stay on loopback.

At the end it checks: every run finished; every result equals the reference's (all fields but
timings and hosts); no run trained from step 0 twice unless its checkpoints were damaged; no
temporary files or locks left; no process of the harness left; the last driver's summary
matches the store. One JSON line per fault (kind, t, run, phase), then one with the totals;
exit 1 if any invariant fails.

    python benchmarks/chaos.py --faults 50 --seed 0 [--runs 16] [--two-nodes]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from etils import epath

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.orchestrate import SHAPE  # noqa: E402
from scaling import store  # noqa: E402
from scaling.data.synthetic import write_code_dataset  # noqa: E402

RUN = {**SHAPE, "max_steps": 240, "eval_every": 30, "early_stopping": 0, "bootstrap": 50}
"""The demo experiment at test size, long enough (8 checkpoints) for faults to land mid-run."""

SWEEP = """
from scaling.sweep import Resources, Sweep

def get_sweep():
    return Sweep(
        name="chaos",
        experiment="demo",
        axes=({{"subset_size": {sizes}}},),
        fixed={fixed},
        profiles={{"cpu": Resources(num_cpus=1)}},
        max_retries=4,
    )
"""

VOLATILE = {"examples_per_s", "host", "seconds", "train_time_s", "wall_time_s"}
"""Result fields that vary between identical runs: timings and where it ran."""

KINDS = ("worker", "driver", "checkpoint", "stale_lock")
SUMMARY = re.compile(r"sweep chaos: (\d+)/(\d+) finished .*?, (\d+) failed, (\d+) diverged")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env(cluster: bool = False) -> dict[str, str]:
    """Ray's environment for the harness: loopback, the local auth token, and single-machine
    mode unless `cluster` (two nodes on one machine)."""
    return {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1" if cluster else "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
    }


class Head:
    """A Ray head on 127.0.0.1 in its own process group, stopped by process group id; with
    `cluster`, in cluster mode with one CPU, for a second node to join."""

    def __init__(self, temp: Path, cluster: bool = False) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.cluster = cluster
        subprocess.run(["ray", "get-auth-token", "--generate"], capture_output=True, check=True)
        self.proc = subprocess.Popen(
            ["ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1",
             f"--port={self.address.split(':')[1]}", f"--num-cpus={1 if cluster else 2}",
             "--include-dashboard=false", f"--dashboard-agent-listen-port={free_port()}",
             f"--ray-client-server-port={free_port()}", f"--temp-dir={temp}",
             "--disable-usage-stats"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env=ray_env(cluster),
        )  # fmt: skip
        self.wait_for(nodes=1)

    def wait_for(self, nodes: int) -> None:
        """Until `nodes` nodes are alive (the head first), or RuntimeError after 2 minutes."""
        deadline = time.monotonic() + 120
        while True:
            status = subprocess.run(
                ["ray", "status", f"--address={self.address}"],
                capture_output=True, text=True, env=ray_env(self.cluster),
            )  # fmt: skip
            if not status.returncode and _active_nodes(status.stdout) >= nodes:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Ray cluster did not reach {nodes} node(s)")
            time.sleep(1)

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            time.sleep(1)  # its group's stragglers


def _active_nodes(status: str) -> int:
    """Nodes listed under "Active:" in `ray status`."""
    active = status.split("Active:")[1].split("Pending:")[0] if "Active:" in status else ""
    return sum(1 for line in active.splitlines() if line.strip().startswith("1 node_"))


class Node(Head):
    """A second node joining `head` on 127.0.0.1, in its own process group, with one CPU."""

    def __init__(self, head: Head) -> None:
        self.address, self.cluster = head.address, True
        self.proc = subprocess.Popen(
            ["ray", "start", f"--address={head.address}", "--block",
             "--node-ip-address=127.0.0.1", "--num-cpus=1",
             f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env=ray_env(cluster=True),
        )  # fmt: skip
        head.wait_for(nodes=2)

    def pids(self) -> set[int]:
        """The node's processes: `ray start`, its raylet and every worker the raylet started
        (workers have process groups of their own)."""
        try:
            root = psutil.Process(self.proc.pid)
            return {root.pid, *(child.pid for child in root.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def stop(self) -> None:
        """The node lost: every one of its processes killed at once, then reaped."""
        for pid in self.pids():
            kill(pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)


@dataclass
class Storm:
    """The faults, the drivers and what happened to each run."""

    rng: random.Random
    work: Path
    sweep: Path
    root: Path
    address: str
    head: Head | None = None  # set with a second node, whose loss is a fault
    nodes: list[Node] = field(default_factory=list)  # second nodes, the live one last
    drivers: list[subprocess.Popen] = field(default_factory=list)
    groups: set[int] = field(default_factory=set)  # process groups of every driver launched
    damaged: set[str] = field(default_factory=set)
    kills: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)  # (when, had ckpt)
    log: list[dict] = field(default_factory=list)
    last_output: str = ""
    started: float = field(default_factory=time.monotonic)

    def launch(self, count: int = 1) -> None:
        for _ in range(count):
            log = self.work / "drivers" / f"{self.root.name}-{len(self.groups)}.log"
            log.parent.mkdir(exist_ok=True)
            with log.open("w") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "scaling.cli", "sweep", str(self.sweep),
                     "--store", str(self.root), "--address", self.address],
                    cwd=self.work, stdout=out, stderr=subprocess.STDOUT,
                    env=ray_env(cluster=bool(self.nodes)),
                    start_new_session=True,
                )  # fmt: skip
            proc.log = log
            self.drivers.append(proc)
            self.groups.add(proc.pid)

    def reap(self) -> bool:
        """Collect drivers that ended; True once one ended with every run finished."""
        done = False
        for proc in [p for p in self.drivers if p.poll() is not None]:
            self.drivers.remove(proc)
            self.last_output = proc.log.read_text()
            done |= proc.returncode == 0
        return done

    def note_kill(self, run: Path) -> None:
        self.kills.setdefault(run.name, []).append((time.time(), bool(committed(run))))

    def running(self) -> list[tuple[Path, int]]:
        """(run dir, pid) of every run whose lock a live process of this host holds now (a
        killed worker's lock stays until the run is taken over; a planted stale lock names
        another host and pid 1)."""
        held = []
        for lock in (self.root / "chaos").glob("*/lock"):
            try:
                body = json.loads(lock.read_text())
                pid = int(body["pid"])
            except (OSError, ValueError, KeyError):
                continue
            if body.get("host") == socket.gethostname() and psutil.pid_exists(pid):
                held.append((lock.parent, pid))
        return held

    def record(self, kind: str, run: Path | None, phase: str) -> None:
        event = {"fault": kind, "store": self.root.name,
                 "t": round(time.monotonic() - self.started, 1),
                 "run": run.name if run else None, "phase": phase}  # fmt: skip
        self.log.append(event)
        print(json.dumps(event), flush=True)

    def inject(self, kind: str) -> bool:
        """One fault of `kind`; False when there is nothing to inject it into right now."""
        if kind == "node":
            node = self.nodes[-1]
            pids = node.pids()
            hit = [run for run, pid in self.running() if pid in pids]
            if not hit:
                return False  # nothing runs there now
            for run in hit:
                self.note_kill(run)
            node.stop()
            self.nodes.append(Node(self.head))
            self.record(kind, None, f"lost with {len(hit)} run(s), replaced")
            return True
        if kind == "driver":
            if not self.drivers:
                return False
            for run, _ in self.running():  # their workers die with the driver
                self.note_kill(run)
            for proc in self.drivers:
                kill(proc.pid)
            self.drivers.clear()
            relaunches = self.rng.choice((1, 1, 2))
            self.launch(relaunches)
            self.record(kind, None, f"relaunched x{relaunches}")
            return True
        if kind == "stale_lock":
            pending = [
                p.parent
                for p in (self.root / "chaos").glob("*/config.json")
                if not any((p.parent / name).exists() for name in ("lock", "result.json"))
            ]
            if not pending:
                return False
            run = self.rng.choice(pending)
            dead_since = time.time() - store.LOCK_STALE_AFTER_S - self.rng.uniform(0, 5)
            body = {"host": "chaos-elsewhere", "pid": 1, "heartbeat": dead_since}
            try:
                with open(run / "lock", "x") as f:
                    json.dump(body, f)
            except FileExistsError:
                return False
            self.record(kind, run, "pending")
            return True
        held = self.running()
        if kind == "checkpoint":
            held = [(run, pid) for run, pid in held if committed(run)]
        if not held:
            return False
        run, pid = self.rng.choice(held)
        phase = phase_of(run)
        if kind == "checkpoint":
            newest = committed(run)[-1]
            damage(newest, self.rng)
            self.damaged.add(run.name)
            phase = f"damaged step {newest.name}, then killed in {phase}"
        self.note_kill(run)
        kill(pid)
        self.record(kind, run, phase)
        return True


def committed(run: Path) -> list[Path]:
    """The run's committed latest-checkpoint step folders, oldest first."""
    steps = [p for p in (run / "ckpt" / "latest").glob("*") if p.name.isdigit()]
    return sorted(steps, key=lambda p: int(p.name))


def damage(step: Path, rng: random.Random) -> None:
    files = sorted(p for p in step.rglob("*") if p.is_file())
    victim = rng.choice(files)
    if rng.random() < 0.5:
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])


def phase_of(run: Path) -> str:
    """What the run is doing, as far as its files tell."""
    if (run / "result.json").exists():
        return "result written"
    records = store.read_metrics(epath.Path(run))
    return f"training after step {records[-1]['step']}" if records else "start-up"


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def write_sweep(work: Path, data: Path, runs: int) -> Path:
    path = work / "chaos.py"
    path.write_text(SWEEP.format(sizes=_sizes(runs), fixed=repr({**RUN, "data.path": str(data)})))
    return path


def _sizes(runs: int) -> list[int]:
    """`runs` distinct subset sizes from 40 to 200 exams (the training pool holds about 240)."""
    return sorted({round(40 + 160 * i / max(runs - 1, 1)) for i in range(runs)})


def sweep_once(work: Path, sweep: Path, root: Path, address: str, cluster: bool) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "scaling.cli", "sweep", str(sweep), "--store", str(root),
         "--address", address],
        cwd=work, capture_output=True, text=True, env=ray_env(cluster), timeout=3600,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"reference sweep failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def results(root: Path) -> dict[str, dict]:
    return {
        s.run_id: {
            k: v for k, v in store.read_json(s.path / "result.json").items() if k not in VOLATILE
        }
        for s in store.scan(root, "chaos")
        if s.status == store.FINISHED
    }


def storm(
    args: argparse.Namespace, work: Path, sweep: Path, head: Head, nodes: list[Node]
) -> list[Storm]:
    """Run the sweep through `args.faults` faults, drawn from shuffled decks of every kind (a
    kind with nothing to hit right now waits for the next tick). A sweep that finishes before
    every fault has landed (a fast machine) is run again into a fresh store, so the storm's
    size does not depend on the machine's speed."""
    rng = random.Random(args.seed)
    deck: list[str] = []
    rounds: list[Storm] = []
    kinds = (*KINDS, "node") if nodes else KINDS
    while sum(len(r.log) for r in rounds) < args.faults and len(rounds) < args.faults:
        chaos = Storm(rng, work, sweep, work / f"storm-{len(rounds)}", head.address, head, nodes)
        rounds.append(chaos)
        chaos.launch()
        done = False
        while not done:
            time.sleep(rng.uniform(0.5, args.every))
            done = chaos.reap()
            if sum(len(r.log) for r in rounds) < args.faults and not done:
                deck = deck or rng.sample(kinds, len(kinds))
                hit = next((kind for kind in deck if chaos.inject(kind)), None)
                if hit:
                    deck.remove(hit)
            if not chaos.drivers and not done:
                chaos.launch()  # a driver that ended with failures: launch again, as a user would
        for proc in chaos.drivers:  # a second relaunch still running finds everything finished
            proc.wait(timeout=600)
        chaos.reap()
    return rounds


def check(reference: dict, rounds: list[Storm]) -> dict:
    """The invariants over every round's store, and the faults by kind."""
    each = [check_round(reference, chaos) for chaos in rounds]
    log = [event for chaos in rounds for event in chaos.log]
    return {
        "faults": len(log),
        "rounds": len(rounds),
        "by_kind": Counter(e["fault"] for e in log),
        **{key: sum(r[key] for r in each) for key in ("lost", "mismatched", "retrained_from_zero")},
        "leftovers": [path for r in each for path in r["leftovers"]],
        "summary_matches_store": all(r["summary_matches_store"] for r in each),
    }


def check_round(reference: dict, chaos: Storm) -> dict:
    got = results(chaos.root)
    runs = len(reference)
    lost = runs - len(got)
    mismatched = sorted(rid for rid, r in got.items() if r != reference.get(rid))
    retrained = sorted(
        s.run_id for s in store.scan(chaos.root, "chaos") if restarted_needlessly(s.path, chaos)
    )
    leftovers = sorted(
        str(p.relative_to(chaos.work))
        for p in chaos.root.rglob("*")
        if p.name.startswith("lock") or ".tmp" in p.name or "orbax-checkpoint-tmp" in p.name
    )
    summary = SUMMARY.search(chaos.last_output)
    finished = int(summary.group(1)) if summary else -1
    return {
        "lost": lost,
        "mismatched": len(mismatched),
        "retrained_from_zero": len(retrained),
        "leftovers": leftovers,
        "summary_matches_store": finished == len(got),
    }


def restarted_needlessly(run: Path, chaos: Storm) -> bool:
    """Whether the run trained from step 0 again although its last kill left a checkpoint
    (and none of its checkpoints was damaged)."""
    if run.name in chaos.damaged:
        return False
    trainings = [json.loads(x) for x in (run / "trainings.jsonl").read_text().splitlines()]
    kills = chaos.kills.get(run.name, [])
    for entry in trainings[1:]:
        before = [had_ckpt for when, had_ckpt in kills if when < entry["time"]]
        if entry["start_step"] == 0 and before and before[-1]:
            return True
    return False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--faults", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=16)
    p.add_argument("--every", type=float, default=6.0, help="most seconds between faults")
    p.add_argument("--work", type=Path, help="folder for data, stores and Ray (default: temp)")
    p.add_argument(
        "--two-nodes", action="store_true",
        help="a second node on 127.0.0.1 whose loss is a fault (Ray's cluster mode: it also "
        "listens on 0.0.0.0)",
    )  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="chaos-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    head = Head(Path(tempfile.mkdtemp(prefix="ray-chaos-", dir="/tmp")), cluster=args.two_nodes)
    nodes = [Node(head)] if args.two_nodes else []
    groups = {head.proc.pid}
    try:
        data = write_code_dataset(work / "data", n_exams=400, n_patients=300, length=1024)
        sweep = write_sweep(work, data, args.runs)
        sweep_once(work, sweep, work / "reference", head.address, args.two_nodes)
        reference = results(work / "reference")
        reference_s = round(time.monotonic() - started, 1)
        rounds = storm(args, work, sweep, head, nodes)
        groups |= {g for chaos in rounds for g in chaos.groups}
        totals = check(reference, rounds) | {"reference_s": reference_s}
    finally:
        for node in nodes:
            node.stop()
        head.stop()
    groups |= {node.proc.pid for node in nodes}
    stray = survivors(groups)
    for pid in stray:
        kill(pid)
    totals |= {"stray_processes": len(stray), "wall_s": round(time.monotonic() - started, 1)}
    print(json.dumps(totals), flush=True)
    ok = not (totals["lost"] or totals["mismatched"] or totals["retrained_from_zero"]
              or totals["leftovers"] or stray or not totals["summary_matches_store"])  # fmt: skip
    return 0 if ok else 1


def survivors(groups: set[int]) -> list[int]:
    """Live processes of the harness: in the process group of its head or of a driver."""
    alive = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) in groups and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return alive


if __name__ == "__main__":
    sys.exit(main())
