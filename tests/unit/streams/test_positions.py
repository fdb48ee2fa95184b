"""The input-position guard: replays are dropped, a skipped range is read in before going on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from runtime.positions import InputPositions, StallWatch, admit
from runtime.range_reader import Message, Replayed


@dataclass
class Log:
    """One partition's messages on a pretend broker; records what was read from it."""

    topic: str = "news"
    reads: list[tuple[int, int, int]] = field(default_factory=list)

    def event(self, partition: int, offset: int) -> Replayed:
        return Replayed(
            None, f"{partition}:{offset}".encode(), Message(self.topic, partition, offset)
        )

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Replayed]:
        assert topic == self.topic
        self.reads.append((partition, start, end))
        return [self.event(partition, o) for o in range(start, end)]


def offsets(events: list[Replayed]) -> list[tuple[int, int]]:
    return [(e.message.partition, e.message.offset) for e in events]


def run(batch: list[Replayed], p: InputPositions, log: Log, enabled: bool = True) -> list[Replayed]:
    return asyncio.run(admit(batch, p, read=log.read, stage="test", enabled=enabled))


def test_first_offset_is_accepted_then_order_is_enforced() -> None:
    p = InputPositions()
    assert p.check(0, 40) == "apply"
    p.applied(0, 40)
    assert p.check(0, 41) == "apply"
    assert p.check(0, 39) == "seen"
    assert p.check(0, 40) == "seen"
    assert p.check(0, 45) == "hole"


def test_replayed_events_below_the_saved_position_are_dropped() -> None:
    log = Log()
    p = InputPositions({0: 12})
    got = run([log.event(0, o) for o in range(8, 15)], p, log)
    assert offsets(got) == [(0, 12), (0, 13), (0, 14)]
    assert p.expected == {0: 15} and log.reads == []


def test_a_jump_is_filled_from_the_broker_before_the_event_that_revealed_it() -> None:
    log = Log()
    p = InputPositions({0: 100, 1: 7})
    batch = [log.event(1, 7), log.event(0, 104), log.event(1, 8), log.event(0, 105)]
    got = run(batch, p, log)
    assert offsets(got) == [
        (1, 7),
        (0, 100),
        (0, 101),
        (0, 102),
        (0, 103),
        (0, 104),
        (1, 8),
        (0, 105),
    ]
    assert log.reads == [(0, 100, 104)]
    assert p.expected == {0: 106, 1: 9}


def test_a_range_the_broker_no_longer_has_is_passed_over() -> None:
    async def gone(topic: str, partition: int, start: int, end: int) -> list[Replayed]:
        return []

    p = InputPositions({3: 10})
    log = Log()
    got = asyncio.run(admit([log.event(3, 20)], p, read=gone, stage="test", enabled=True))
    assert offsets(got) == [(3, 20)] and p.expected == {3: 21}


def test_reset_replaces_expectations_and_disabled_guard_passes_everything() -> None:
    log = Log()
    p = InputPositions({0: 5, 1: 7})
    p.reset({1: 3})
    assert p.check(0, 99) == "apply"  # no expectation left for partition 0
    assert p.check(1, 4) == "hole"
    batch = [log.event(1, 1), log.event(1, 9)]
    assert offsets(run(batch, p, log, enabled=False)) == [(1, 1), (1, 9)]
    assert log.reads == [] and p.expected == {1: 3}


def test_a_partition_without_a_position_starts_where_the_group_resumes() -> None:
    """Faust can drop fetched events at a rebalance and not fetch them again (no commit yet):
    the first event seen is then not the start, and what came before it is read in."""
    log = Log()
    asked: list[tuple[str, list[int]]] = []

    async def start(topic: str, partitions: Sequence[int]) -> dict[int, int]:
        asked.append((topic, list(partitions)))
        return {p: {0: 0, 1: 20}[p] for p in partitions}

    p = InputPositions()
    batch = [log.event(0, 3), log.event(1, 20), log.event(0, 4), log.event(1, 21)]
    got = asyncio.run(admit(batch, p, read=log.read, stage="test", enabled=True, start=start))
    assert offsets(got) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 20), (0, 4), (1, 21)]
    assert log.reads == [(0, 0, 3)]
    assert asked == [("news", [0, 1])]  # once per batch, not per partition or event
    assert p.expected == {0: 5, 1: 22}


def test_a_recorded_position_is_not_asked_again() -> None:
    log = Log()

    async def start(topic: str, partitions: Sequence[int]) -> dict[int, int]:
        raise AssertionError(f"asked for {partitions}, though each has a recorded position")

    p = InputPositions({0: 7})
    got = asyncio.run(
        admit([log.event(0, 7)], p, read=log.read, stage="test", enabled=True, start=start)
    )
    assert offsets(got) == [(0, 7)]


def test_a_partition_standing_still_behind_its_end_is_nudged_once_per_period() -> None:
    watch = StallWatch(after_s=10)
    assert not watch.due(1, at=0, end=2, now=0.0)  # first sight: the clock starts
    assert not watch.due(1, at=0, end=2, now=9.9)
    assert watch.due(1, at=0, end=2, now=10.0)
    assert not watch.due(1, at=0, end=2, now=15.0)  # nudged: wait a full period again
    assert watch.due(1, at=0, end=2, now=20.0)


def test_progress_or_a_caught_up_partition_is_never_nudged() -> None:
    watch = StallWatch(after_s=10)
    for i in range(20):  # a backlog worked through slowly: the position moves
        assert not watch.due(0, at=i, end=100, now=i * 6.0)
    assert not watch.due(2, at=5, end=5, now=0.0)  # at the end: nothing to read
    assert not watch.due(2, at=5, end=5, now=100.0)
    assert not watch.due(2, at=5, end=7, now=101.0)  # new messages: the clock restarts
    assert watch.due(2, at=5, end=7, now=111.0)
