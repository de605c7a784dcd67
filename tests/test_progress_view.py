"""The sweep's progress as users see it: live in a terminal, plain lines in a pipe."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
from pathlib import Path

import pytest
from conftest import SCALING, scaling_bin, write_sweep

from scaling import store
from scaling.progress import LiveView, PlainView, view_for

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RAY_LOG = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+\t[A-Z]+ ")  # Ray's own records, coloured
LONG = {"max_steps": 100, "eval_every": 10, "early_stopping": 0}
"""Runs long enough (10 evaluations) to be seen running at a refresh of 0.2 s."""


def in_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run the installed `scaling` with a pseudo-terminal (160 x 40) as its stdin, stdout and
    stderr, reading everything it writes until it exits; returns (exit code, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    command = [str(SCALING) if SCALING.exists() else "scaling", *args]
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        try:
            data = os.read(master, 1 << 16) if ready else b""
        except OSError:  # EIO: every writer closed the terminal
            data = b""
        if data:
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


def terminal_env(**extra: str) -> dict[str, str]:
    drop = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE",
            "TTY_INTERACTIVE", "COLUMNS", "LINES"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "TERM": "xterm-256color", **extra}


@pytest.mark.slow
@pytest.mark.ray
def test_in_a_terminal_a_sweep_shows_a_live_bar_and_its_runs(ray_head, code_data, tmp_path):
    sweep = write_sweep(tmp_path, "live", [40, 80], code_data, **LONG).name
    args = ["sweep", sweep, "--store", "store", "--address", ray_head[0], "--refresh", "0.2"]
    code, raw = in_terminal(args, tmp_path, terminal_env())
    text = ANSI.sub("", raw)
    assert code == 0, text
    assert "\x1b[" in raw and "━" in text  # redrawn in place, with a bar
    for run in store.scan(tmp_path / "store", "live"):
        size = store.load_config(run.path).data.subset_size
        row = rf"live/{run.run_id} +{size} +\d+ +\S+ +\S+ +[\d,]+\b"  # step, AUROC, loss, ex/s
        assert re.search(row, text), f"no row of running run {run.run_id}:\n{text}"
    headlines = re.findall(r"runs: \d/2 done, \d running[^\r\n]*", text)
    assert any(", 2 running" in h or ", 1 running" in h for h in headlines), headlines
    assert headlines[-1].startswith("runs: 2/2 done, 0 running, 0 failed, 0 diverged, 0 pending")
    assert headlines[-1].rstrip().endswith("ETA 0s")
    assert "2/2 finished (2 trained now)" in text


@pytest.mark.slow
@pytest.mark.ray
def test_a_sweep_in_a_pipe_prints_plain_status_lines(ray_head, code_data, tmp_path):
    sweep = write_sweep(tmp_path, "plain", [40, 80], code_data, **LONG).name
    args = ["sweep", sweep, "--store", "store", "--address", ray_head[0], "--refresh", "0.2"]
    out = scaling_bin(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    ours = [x for x in (out.stdout + out.stderr).splitlines() if not RAY_LOG.match(x)]
    assert ours and not [x for x in ours if "\x1b" in x]
    line = r"\n  plain/[0-9a-f]{16} subset (40|80): step \d+, val_macro_auroc \S+, val_loss \S+, "
    assert re.search(line + r"[\d,]+ examples/s\n", out.stderr), out.stderr
    last = re.findall(r"runs: .*", out.stderr)[-1]
    assert last.startswith("runs: 2/2 done, 0 running, 0 failed") and last.endswith("ETA 0s")


def test_the_view_is_live_only_on_an_interactive_terminal(tmp_path, monkeypatch):
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    master, slave = pty.openpty()
    with open(slave, "w") as terminal, open(tmp_path / "log", "w") as log:
        assert type(view_for(log)) is PlainView
        assert type(view_for(terminal)) is LiveView
        monkeypatch.setenv("NO_COLOR", "1")  # still live, without colours
        view = view_for(terminal)
        assert type(view) is LiveView and view.console.no_color
        monkeypatch.setenv("TERM", "dumb")  # cannot redraw in place
        assert type(view_for(terminal)) is PlainView
    os.close(master)
