"""Where each input partition must continue, so a skipped range is read again, not lost.

Faust treats a jump in offsets as a gap (compaction, transaction markers) and commits past it.
Under rebalances and restarts its fetch loop can deliver such jumps over messages no agent
saw (the kill -9 fault test caught ~1,900 ticks skipped that way). A stateful agent records,
with its state, the next offset it expects per partition; anything older was applied already,
anything newer means a hole, which the agent reads from the broker before going on.

A partition with no recorded position starts where the group resumes it: its committed offset,
or the first retained one when the group never committed there. Taking the first message that
came as the start lost messages: on a rebalance Faust drops the events it had fetched, and
aiokafka's seek to the committed offset leaves a partition with no commit where it was, so those
events never come again (a worker frozen past its session while a new topic filled lost the
topic's first messages that way).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cpwatch import metrics

log = logging.getLogger(__name__)

Verdict = Literal["apply", "seen", "hole"]
# (topic, partition, start, end) -> the messages start <= offset < end still on the broker
Reader = Callable[[str, int, int, int], Awaitable[Sequence[Any]]]
# (topic, partitions) -> the offset the group resumes each of those partitions at
Start = Callable[[str, Sequence[int]], Awaitable[dict[int, int]]]


@dataclass
class InputPositions:
    """Next expected offset per partition (no entry: no expectation, accept what comes)."""

    expected: dict[int, int] = field(default_factory=dict)

    def check(self, partition: int, offset: int) -> Verdict:
        want = self.expected.get(partition)
        if want is None or offset == want:
            return "apply"
        return "seen" if offset < want else "hole"

    def applied(self, partition: int, offset: int) -> None:
        self.expected[partition] = offset + 1

    def reset(self, expected: dict[int, int] | None = None) -> None:
        self.expected = dict(expected or {})


async def admit(
    batch: Sequence[Any],
    positions: InputPositions,
    *,
    read: Reader,
    stage: str,
    enabled: bool,
    start: Start | None = None,
) -> list[Any]:
    """The events of a ``take_events`` batch still to apply, in offset order per partition,
    with any skipped range read in before the event that revealed it; each marked applied.
    ``start`` gives a partition with no recorded position its starting offset (see above)."""
    if not enabled:  # exactly_once: transaction markers make real holes
        return list(batch)
    if start is not None:
        await _ask_starts(batch, positions, start)
    fresh: list[Any] = []
    for event in batch:
        msg = event.message
        verdict = positions.check(msg.partition, msg.offset)
        if verdict == "seen":
            continue  # already applied: a replay after a crash, or a late duplicate fetch
        if verdict == "hole":
            want = positions.expected[msg.partition]
            missed = await read(msg.topic, msg.partition, want, msg.offset)
            log.warning(
                "%s: input %s-%d jumped from %d to %d; read the %d messages between",
                stage,
                msg.topic,
                msg.partition,
                want,
                msg.offset,
                len(missed),
            )
            metrics.INPUT_REFILLS.labels(stage).inc(len(missed))
            for old in missed:
                positions.applied(msg.partition, old.message.offset)
                fresh.append(old)
        positions.applied(msg.partition, msg.offset)
        fresh.append(event)
    return fresh


async def _ask_starts(batch: Sequence[Any], positions: InputPositions, start: Start) -> None:
    """Record where the group resumes each partition of ``batch`` that has no position, in one
    question per topic: asked one partition at a time, a holder-stage batch touching eight new
    partitions spent most of a second on it before its first valuation (bench_pipeline)."""
    missing: dict[str, list[int]] = {}
    for event in batch:
        msg = event.message
        if msg.partition not in positions.expected:
            wanted = missing.setdefault(msg.topic, [])
            if msg.partition not in wanted:
                wanted.append(msg.partition)
    for topic, partitions in missing.items():
        positions.expected.update(await start(topic, partitions))


@dataclass
class StallWatch:
    """Which input partitions stand still behind their end: a nudge is due for a partition
    whose expected position has not moved for ``after_s`` while the broker holds more.

    At a rebalance Faust drops the records its consumer fetched under the old generation, and
    the fetch position has moved past them: the guard reads such a range in when the next
    message reveals it, but a partition whose last messages were dropped has no next message
    and stands still for good (the frozen-worker fault test left 2 tick frames unread). A
    nudge, an empty message written to the partition, is that next message."""

    after_s: float
    since: dict[int, tuple[int, float]] = field(default_factory=dict)  # partition: (at, since)

    def due(self, partition: int, at: int, end: int, now: float) -> bool:
        if at >= end:
            self.since.pop(partition, None)
            return False
        last = self.since.get(partition)
        if last is None or last[0] != at:
            self.since[partition] = (at, now)
            return False
        if now - last[1] < self.after_s:
            return False
        self.since[partition] = (at, now)  # at most one nudge per period
        return True
