"""Log lines a flood would repeat thousands of times a second, kept to a few: at most one
per kind per interval, the rest counted and reported as one line when the interval ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["INTERVAL", "Throttle"]

INTERVAL = 10.0  # seconds between two lines of one kind
K = TypeVar("K", bound=Hashable)


class Throttle(Generic[K]):
    """``due(kind)`` says whether this occurrence's line is to be logged: the first of a
    kind at once, the others counted; when the interval ends, ``more(kind, count)`` is
    called for each kind that recurred, and that kind stays counted one more interval (a
    steady flood is one line per interval). Kinds are a small fixed set (a class, a
    cause), never a client's data: each one is remembered for an interval."""

    def __init__(self, more: Callable[[K, int], None], interval: float = INTERVAL) -> None:
        self.interval = interval
        self._more = more
        self._counted: dict[K, int] = {}  # kinds in their quiet interval: how many since
        self._ends = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def due(self, kind: K) -> bool:
        # The interval may be over with its timer not run yet, or never to run (no loop).
        if self._counted and time.monotonic() >= self._ends:
            self.flush()
        if kind in self._counted:
            self._counted[kind] += 1
            return False
        self._counted[kind] = 0
        if len(self._counted) == 1:
            self._start()
        return True

    def flush(self) -> None:
        """Report the counts now (at the interval's end, or when a service stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        counted, self._counted = self._counted, {}
        for kind, count in counted.items():
            if count:
                self._more(kind, count)
                self._counted[kind] = 0
        if self._counted:
            self._start()

    def _start(self) -> None:
        self._ends = time.monotonic() + self.interval
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the counts wait for the next due() after the end
            return
        self._timer = loop.call_later(self.interval, self.flush)
