"""Replay pacing: turn gaps between data timestamps into wall-clock waits."""

from __future__ import annotations

import threading
import time
from datetime import datetime


class Pacer:
    """Sleep so that ``data_seconds_per_second`` seconds of data pass per wall second.

    ``rate <= 0`` means as fast as possible. Waits are measured from the first item, so small
    per-item overheads do not accumulate into drift; data going backwards never waits.
    ``stop`` interrupts a wait at once (SIGTERM during a long gap).
    """

    def __init__(self, data_seconds_per_second: float, stop: threading.Event | None = None):
        self.rate = data_seconds_per_second
        self.stop = stop or threading.Event()
        self._t0: datetime | None = None
        self._wall0 = 0.0

    def wait_until(self, at: datetime | None) -> bool:
        """Wait until ``at`` is due; return False if stopped meanwhile."""
        if self.rate <= 0 or at is None:
            return not self.stop.is_set()
        if self._t0 is None:
            self._t0, self._wall0 = at, time.monotonic()
            return not self.stop.is_set()
        due = self._wall0 + (at - self._t0).total_seconds() / self.rate
        delay = due - time.monotonic()
        if delay > 0:
            return not self.stop.wait(delay)
        return not self.stop.is_set()
