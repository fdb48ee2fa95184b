"""Read a range of offsets of one partition with a throwaway consumer, beside Faust's.

The input-position guard (runtime/positions.py) uses it to fill a hole Faust's fetch loop
skipped. Seeking Faust's own consumer back instead interferes with its fetch loop: messages
already fetched keep arriving after the seek, move its read offset past the re-read range and
make it drop that range again. A separate consumer outside any group leaves Faust untouched.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from cpwatch.settings import Settings

log = logging.getLogger(__name__)

GIVE_UP_S = 120.0  # the broker returned nothing for this long: the range is gone (retention)


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
    """Where consumer group ``group`` resumes a partition: its committed offset, else the first
    offset the broker still has (the group reads from the earliest). Asked once per partition
    that has no recorded position (runtime/positions.py); the consumer only fetches offsets, it
    never joins the group."""

    settings: Settings
    group: str

    async def __call__(self, topic: str, partition: int) -> int:
        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(
            group_id=self.group,
            enable_auto_commit=False,
            **self.settings.aiokafka_client_kwargs(),
        )
        await consumer.start()
        try:
            committed = await consumer.committed(tp)
            if committed is not None and committed >= 0:
                return int(committed)
            first = await consumer.beginning_offsets([tp])
            return int(first[tp])
        finally:
            await consumer.stop()
