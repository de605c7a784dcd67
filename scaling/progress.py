"""Progress of a sweep read from its store: runs done / running / failed / pending, ETA."""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from scaling import store
from scaling.store import RunState


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _latest(state: RunState) -> str:
    rec = state.latest
    if not rec:
        return "starting"
    parts = [f"step {rec.get('step', '?')}"]
    for key in ("val_macro_auroc", "val_loss"):
        if isinstance(rec.get(key), float):
            parts.append(f"{key} {rec[key]:.4f}")
    return ", ".join(parts)


def summarize(
    states: Sequence[RunState],
    *,
    planned: int | None = None,
    elapsed: float | None = None,
    concurrency: int = 1,
    mean_run_s: float | None = None,
) -> str:
    """A status block: counts, elapsed and ETA, then one line per running run."""
    counts = Counter(s.status for s in states)
    total = planned if planned is not None else len(states)
    pending = total - sum(
        counts[k] for k in (store.FINISHED, store.RUNNING, store.FAILED, store.DIVERGED)
    )
    line = (
        f"runs: {counts[store.FINISHED]}/{total} done, {counts[store.RUNNING]} running, "
        f"{counts[store.FAILED]} failed, {counts[store.DIVERGED]} diverged, {pending} pending"
    )
    if elapsed is not None:
        line += f" | elapsed {_duration(elapsed)}"
        remaining = counts[store.RUNNING] + pending
        if mean_run_s and remaining:
            line += f", ETA {_duration(mean_run_s * remaining / max(1, concurrency))}"
        elif not remaining:
            line += ", ETA 0s"
    rows = [line]
    for s in states:
        if s.status == store.RUNNING:
            rows.append(f"  {s.sweep}/{s.run_id} {_latest(s)}")
    return "\n".join(rows)


class Reporter:
    """Shows the status block every `every` seconds (and when forced, e.g. at the end)."""

    def __init__(self, every: float = 10.0, stream: TextIO = sys.stderr) -> None:
        self.every, self.stream = every, stream
        self.last = -math.inf

    def due(self, *, force: bool = False) -> bool:
        """Whether a block should be shown now (so the caller builds it only then)."""
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            return True
        return False

    def show(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
