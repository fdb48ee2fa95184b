"""Which input offsets may be committed when records finish out of order. Pure.

Deliveries run concurrently (a slow endpoint's delivery may finish long after a later one to
a fast endpoint), but a Kafka commit is one offset per partition: "everything below this is
done". So per partition the committable offset is the lowest offset still in flight, or, with
nothing in flight, one past the highest offset seen. A crash then replays exactly the records
without a final outcome (and perhaps some finished ones above them: at-least-once).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)  # a partition (aiokafka TopicPartition in the agent)


@dataclass
class _Partition:
    pending: set[int] = field(default_factory=set)
    heap: list[int] = field(default_factory=list)  # pending offsets; finished ones popped lazily
    next: int = 0  # one past the highest offset started
    committed: int | None = None  # what ``committable`` last handed out

    def low(self) -> int:
        while self.heap and self.heap[0] not in self.pending:
            heapq.heappop(self.heap)
        return self.heap[0] if self.heap else self.next


class OffsetTracker(Generic[P]):
    def __init__(self) -> None:
        self._parts: dict[P, _Partition] = {}

    def start(self, tp: P, offset: int) -> None:
        """A record was taken for processing."""
        p = self._parts.setdefault(tp, _Partition())
        p.pending.add(offset)
        heapq.heappush(p.heap, offset)
        p.next = max(p.next, offset + 1)

    def finish(self, tp: P, offset: int) -> None:
        """The record has its final outcome. Unknown records (a revoked partition) are ignored."""
        p = self._parts.get(tp)
        if p is not None:
            p.pending.discard(offset)

    def committable(self) -> dict[P, int]:
        """Offsets to commit now: only partitions whose committable offset moved."""
        out: dict[P, int] = {}
        for tp, p in self._parts.items():
            low = p.low()
            if low != p.committed and (p.committed is None or low > p.committed):
                out[tp] = low
        return out

    def committed(self, offsets: dict[P, int]) -> None:
        """Kafka accepted these offsets."""
        for tp, off in offsets.items():
            if tp in self._parts:
                self._parts[tp].committed = off

    def forget(self, tps: Iterable[P]) -> None:
        """Partitions revoked: their records belong to the next owner now."""
        for tp in tps:
            self._parts.pop(tp, None)

    def in_flight(self, tp: P | None = None) -> int:
        parts = self._parts.values() if tp is None else [self._parts.get(tp, _Partition())]
        return sum(len(p.pending) for p in parts)

    def window(self) -> int:
        """Largest span between a partition's committable offset and its read position:
        what a crash would replay. The agent stops reading while it is too large."""
        return max((p.next - p.low() for p in self._parts.values()), default=0)
