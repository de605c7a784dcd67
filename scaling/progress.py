"""Progress of a sweep read from its store: runs done / running / failed / pending, ETA.

While a sweep runs, a view chosen once for its stream shows it: `LiveView` (a rich progress
bar and a row per running run, redrawn in place) on an interactive terminal, `PlainView` (the
status block as plain lines, every 10 s) elsewhere: logs, CI, `ray job logs`, `TERM=dumb`.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from scaling import store
from scaling.store import RunState


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _subset(state: RunState) -> str:
    """The run's training subset size ("pool" for the whole pool)."""
    size = store.read_json(state.path / "config.json")["config"]["data"]["subset_size"]
    return f"{size:,}" if size else "pool"


def _number(rec: dict[str, Any], key: str, fmt: str) -> str:
    return format(rec[key], fmt) if isinstance(rec.get(key), float) else "-"


def _latest(state: RunState) -> str:
    rec = state.latest
    if not rec:
        return "starting"
    parts = [f"step {rec.get('step', '?')}"]
    for key in ("val_macro_auroc", "val_loss"):
        if isinstance(rec.get(key), float):
            parts.append(f"{key} {rec[key]:.4f}")
    if isinstance(rec.get("examples_per_s"), float):
        parts.append(f"{rec['examples_per_s']:,.0f} examples/s")
    return ", ".join(parts)


def headline(
    states: Sequence[RunState],
    *,
    planned: int | None = None,
    elapsed: float | None = None,
    concurrency: int = 1,
    mean_run_s: float | None = None,
) -> tuple[str, int, int]:
    """The counts line (with elapsed time and ETA), the runs finished, the runs planned."""
    counts = Counter(s.status for s in states)
    total = planned if planned is not None else len(states)
    pending = total - sum(
        counts[k]
        for k in (store.FINISHED, store.RUNNING, store.FAILED, store.DIVERGED, store.PRUNED)
    )
    line = (
        f"runs: {counts[store.FINISHED]}/{total} done, {counts[store.RUNNING]} running, "
        f"{counts[store.FAILED]} failed, {counts[store.DIVERGED]} diverged, {pending} pending"
    )
    if counts[store.PRUNED]:
        line += f", {counts[store.PRUNED]} pruned"
    if elapsed is not None:
        line += f" | elapsed {_duration(elapsed)}"
        remaining = counts[store.RUNNING] + pending
        if mean_run_s and remaining:
            line += f", ETA {_duration(mean_run_s * remaining / max(1, concurrency))}"
        elif not remaining:
            line += ", ETA 0s"
    return line, counts[store.FINISHED], total


def summarize(states: Sequence[RunState], **progress: Any) -> str:
    """A status block: counts, elapsed and ETA, then one line per running run."""
    rows = [headline(states, **progress)[0]]
    for s in states:
        if s.status == store.RUNNING:
            rows.append(f"  {s.sweep}/{s.run_id} subset {_subset(s)}: {_latest(s)}")
    return "\n".join(rows)


def render(states: Sequence[RunState], **progress: Any) -> Group:
    """The live view: the sweep's bar and counts, then a table of the running runs."""
    line, done, total = headline(states, **progress)
    bar = Table.grid(padding=(0, 1))
    bar.add_row(ProgressBar(total=max(1, total), completed=done, width=30), Text(line))
    runs = Table(box=None, pad_edge=False)
    for name in ("run", "subset", "step", "val AUROC", "val loss", "examples/s"):
        runs.add_column(name, justify="left" if name == "run" else "right")
    for s in states:
        if s.status == store.RUNNING:
            rec = s.latest
            runs.add_row(
                f"{s.sweep}/{s.run_id}",
                _subset(s),
                str(rec.get("step", "starting")),
                _number(rec, "val_macro_auroc", ".4f"),
                _number(rec, "val_loss", ".4f"),
                _number(rec, "examples_per_s", ",.0f"),
            )
    return Group(bar, runs) if runs.row_count else Group(bar)


class PlainView:
    """The status block as plain lines every `every` seconds (and when forced, at the end)."""

    default_every = 10.0

    def __init__(self, stream: TextIO, every: float | None = None) -> None:
        self.stream = stream
        self.every = self.default_every if every is None else every
        self.last = -math.inf

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def due(self, *, force: bool = False) -> bool:
        """Whether to show the progress now (so the caller scans the store only then)."""
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            return True
        return False

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def show(self, states: Sequence[RunState], **progress: Any) -> None:
        self.message(summarize(states, **progress))


class LiveView(PlainView):
    """A progress bar and a row per running run, redrawn in place while the view is entered;
    messages and other output scroll above it. Colours follow rich (`NO_COLOR`)."""

    default_every = 1.0

    def __init__(self, stream: TextIO, every: float | None = None) -> None:
        super().__init__(stream, every)
        self.console = Console(file=stream)
        self.live = Live(console=self.console, auto_refresh=False)

    def __enter__(self) -> LiveView:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def show(self, states: Sequence[RunState], **progress: Any) -> None:
        self.live.update(render(states, **progress), refresh=True)


def view_for(stream: TextIO = sys.stderr, every: float | None = None) -> PlainView:
    """The live view on an interactive terminal (a TTY, not `TERM=dumb`), else plain lines."""
    live = stream.isatty() and Console(file=stream).is_interactive
    return (LiveView if live else PlainView)(stream, every)
