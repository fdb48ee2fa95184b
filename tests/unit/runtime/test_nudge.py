"""The stall timer of runtime/nudge.py over a stand-in for the Faust app: what it asks the
broker, and when it nudges."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from runtime.nudge import watch_stalls

TOPIC = "t-story-input"


class FakeApp:
    """The parts of a Faust app watch_stalls touches: one timer, one revocation signal, a
    consumer with an assignment and its high-water marks."""

    def __init__(self, ends: dict[int, int]) -> None:
        self.rebalancing = False
        done = SimpleNamespace(is_set=lambda: True)
        self.tables = SimpleNamespace(recovery=SimpleNamespace(completed=done))
        self.ends = ends
        self.sought: list[tuple[TopicPartition, int]] = []
        self.consumer = SimpleNamespace(
            assignment=self._assignment, highwaters=self._highwaters, seek=self._seek
        )
        self.timers: list[Callable[[], Awaitable[None]]] = []
        self.revoked: list[Callable[..., Awaitable[None]]] = []
        self.on_partitions_revoked = SimpleNamespace(connect=self.revoked.append)

    def _assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, p) for p in self.ends}

    async def _seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought.append((tp, offset))

    async def _highwaters(self, *tps: TopicPartition) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp.partition] for tp in tps}

    def timer(self, interval: float, name: str) -> Callable[[Any], Any]:
        def register(fun: Callable[[], Awaitable[None]]) -> Any:
            self.timers.append(fun)
            return fun

        return register


class FakeTopic:
    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes]] = []

    def get_topic_name(self) -> str:
        return TOPIC

    async def send(self, *, key: bytes, value: bytes, partition: int) -> None:
        self.sent.append((partition, value))


def test_group_start_is_asked_once_per_assignment_and_a_stall_is_still_nudged() -> None:
    app, topic = FakeApp({0: 50, 1: 80}), FakeTopic()
    asked: list[list[int]] = []

    async def start(name: str, partitions: Sequence[int]) -> dict[int, int]:
        asked.append(sorted(partitions))
        # partition 0 caught up, partition 1 behind its end
        return {p: {0: 50, 1: 30}[p] for p in partitions}

    # No position recorded anywhere: every period falls back to where the group resumes.
    watch_stalls(app, topic, lambda p: None, start, stage="s", nudge=b"N", after_s=0.0)  # type: ignore[arg-type]
    (check,) = app.timers

    async def run() -> None:
        for _ in range(4):
            await check()
        assert asked == [[0, 1]]  # both in one question, not once per period
        (forget,) = app.revoked
        await forget(app, set())
        await check()

    asyncio.run(run())
    assert asked == [[0, 1], [0, 1]]  # asked again after a rebalance
    assert topic.sent and {p for p, _ in topic.sent} == {1}  # only the one behind its end
    assert all(v == b"N" for _, v in topic.sent)


def test_a_topic_not_to_be_written_is_sought_back_instead() -> None:
    app, topic = FakeApp({0: 50, 1: 80, 2: 0}), FakeTopic()
    expected = {0: 50, 1: 30}  # partition 1 stands 50 behind its end; 2 is empty

    async def start(name: str, partitions: Sequence[int]) -> dict[int, int]:
        raise AssertionError("every partition with messages has a position")

    watch_stalls(app, topic, expected.get, start, stage="s", nudge=None, after_s=0.0)  # type: ignore[arg-type]
    (check,) = app.timers

    async def run() -> None:
        await check()  # the first sighting starts the clock
        assert app.sought == []
        await check()

    asyncio.run(run())
    assert app.sought == [(TopicPartition(TOPIC, 1), 30)]
    assert topic.sent == []  # nothing written to it
