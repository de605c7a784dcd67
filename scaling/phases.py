"""Where a run's wall time goes: seconds per named phase, recorded in its result."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class Phases:
    """Wall seconds summed per phase: `with phases("checkpoint"): ...` or `phases.add(...)`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        tick = time.time()
        try:
            yield
        finally:
            self.add(name, time.time() - tick)

    def breakdown(self, wall: float) -> dict[str, float]:
        """The phases and `other` (the rest of `wall`: the loop's own work, logging, trackers)."""
        out = {name: round(s, 4) for name, s in self.seconds.items()}
        out["other"] = round(max(0.0, wall - sum(self.seconds.values())), 4)
        return out
