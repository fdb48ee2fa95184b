"""Read a range of offsets of one partition with a throwaway consumer, beside Faust's.

The input-position guard (runtime/positions.py) uses it to fill a hole Faust's fetch loop
skipped. Seeking Faust's own consumer back instead interferes with its fetch loop: messages
already fetched keep arriving after the seek, move its read offset past the re-read range and
make it drop that range again. A separate consumer outside any group leaves Faust untouched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from cpwatch.settings import Settings

log = logging.getLogger(__name__)

GIVE_UP_S = 120.0  # the broker returned nothing for this long: the range is gone (retention)
RETRY_BACKOFF_MS = 10


@dataclass(frozen=True)
class Message:
    """The part of a Faust message the agents and the dead-letter path read."""

    topic: str
    partition: int
    offset: int

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True)
class Replayed:
    """A message read by the range reader, shaped like the Faust event it stands in for."""

    key: bytes | None
    value: bytes
    message: Message


@dataclass
class RangeReader:
    settings: Settings

    async def __call__(self, topic: str, partition: int, start: int, end: int) -> list[Replayed]:
        """Messages ``start <= offset < end`` that the broker still has, in offset order."""
        if start >= end:
            return []
        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # start deleted by retention: read what remains
            **self.settings.aiokafka_client_kwargs(),
        )
        await consumer.start()
        out: list[Replayed] = []
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            idle_since = time.monotonic()
            while await consumer.position(tp) < end:
                polled = await consumer.getmany(tp, timeout_ms=500, max_records=10_000)
                got = polled.get(tp, [])
                if got:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > GIVE_UP_S:
                    log.error("%s: offsets %d..%d unreadable; left behind", tp, start, end - 1)
                    break
                out.extend(
                    Replayed(r.key, r.value, Message(r.topic, r.partition, r.offset))
                    for r in got
                    if start <= r.offset < end
                )
        finally:
            await consumer.stop()
        return out


@dataclass
class GroupStart:
    """Where consumer group ``group`` resumes partitions: each one's committed offset, else the
    first offset the broker still has (the group reads from the earliest). Asked for the
    partitions of a batch that have no recorded position (runtime/positions.py); the consumer
    only fetches offsets, it never joins the group.

    ``follow`` asks as soon as partitions are assigned, so the first batch after a start or a
    rebalance need not: asked then, on a loop busy routing a backlog, the question took 0.1 to
    0.4 s per stage before the stage's first output (bench_pipeline). An answer from assignment
    time stays right until the next rebalance: only this member commits those partitions
    meanwhile, and only after it processed them."""

    settings: Settings
    group: str
    _ahead: dict[tuple[str, int], asyncio.Future[dict[int, int]]] = field(
        default_factory=dict, init=False, repr=False
    )

    def follow(self, app: faust.App, topic: str) -> None:
        """Ask ahead for ``topic``'s partitions at each assignment; forget at each revocation."""

        @app.on_partitions_revoked.connect
        async def _forget(app: faust.App, revoked: Any, **_: Any) -> None:
            self._ahead.clear()  # answers still on their way are left to finish unread

        @app.on_partitions_assigned.connect
        async def _ask(app: faust.App, assigned: Any, **_: Any) -> None:
            if mine := sorted(tp.partition for tp in assigned if tp.topic == topic):
                self.ask_ahead(topic, mine)

    def ask_ahead(self, topic: str, partitions: Sequence[int]) -> asyncio.Future[dict[int, int]]:
        """Start asking for ``partitions``; a later call for any of them takes this answer once."""
        answer = asyncio.ensure_future(self._ask(topic, partitions))
        answer.add_done_callback(_quiet)
        for p in partitions:
            self._ahead[(topic, p)] = answer
        return answer

    async def __call__(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for p in partitions:
            if (answer := self._ahead.pop((topic, p), None)) is None:
                continue
            try:
                out[p] = (await asyncio.shield(answer))[p]
            except Exception as exc:  # noqa: BLE001 - asked again below
                log.info("%s: asking ahead where %d starts failed (%r)", topic, p, exc)
        rest = [p for p in partitions if p not in out]
        if rest:
            out.update(await self._ask(topic, rest))
        return {p: out[p] for p in partitions}

    async def _ask(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        consumer = AIOKafkaConsumer(
            group_id=self.group,
            enable_auto_commit=False,
            # A fresh consumer has no metadata for the topic: its first offsets request fails
            # and waits this long before the retry, which then finds the refreshed metadata
            # (aiokafka's default 100 ms).
            retry_backoff_ms=RETRY_BACKOFF_MS,
            **self.settings.aiokafka_client_kwargs(),
        )
        await consumer.start()
        try:
            out: dict[int, int] = {}
            for p in partitions:
                committed = await consumer.committed(TopicPartition(topic, p))
                if committed is not None and committed >= 0:
                    out[p] = int(committed)
            never = [TopicPartition(topic, p) for p in partitions if p not in out]
            if never:
                first = await consumer.beginning_offsets(never)
                out.update({tp.partition: int(offset) for tp, offset in first.items()})
            return out
        finally:
            await consumer.stop()


def _quiet(answer: asyncio.Future[dict[int, int]]) -> None:
    """Retrieve an unread answer's error: the caller asks again, asyncio need not log it."""
    if not answer.cancelled():
        answer.exception()
