"""Token buckets, one per caller: pure logic with an injected clock (no I/O, no sleeping).

A bucket holds up to ``burst`` tokens and regains ``rate`` per second; a request takes one or,
when none is left, learns how long until one is. ``Buckets`` keeps one per key (a token's label
or a client address) and forgets the least recently used past ``max_keys``, so a flood of
distinct addresses costs bounded memory (a forgotten key starts again with a full bucket).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass
class TokenBucket:
    rate: float  # tokens per second, > 0
    burst: int
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0.0 if a token was taken, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)  # a clock that steps back never mints tokens
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Buckets:
    """Thread-safe buckets by key; ``rate == 0`` admits everything."""

    def __init__(
        self, rate: float, burst: int, clock: Clock = time.monotonic, max_keys: int = 10_000
    ) -> None:
        self.rate, self.burst, self.clock, self.max_keys = rate, max(1, burst), clock, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 when ``key`` may go on, else the wait in seconds (for Retry-After)."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self.burst, now)
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
            return bucket.take(now)


def retry_after(wait: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait)))
