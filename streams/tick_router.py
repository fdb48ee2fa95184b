"""route-ticks: price ticks → one re-keyed message per symbol and batch, with a plain consumer.

Price ticks are the one high-volume input. Read through a Faust agent they hit Faust's flow
control: once a partition's stream buffer was full, Faust stopped fetching it and, in the kill
-9 fault test, sometimes never resumed (the worker stalled with 16k ticks unread), or dropped
already-fetched ticks and committed past them. Routing needs no state, so it reads with its own
consumer group, sends the batch's re-keyed messages, and commits the polled offsets only once
Kafka acknowledged them. A crash replays the batch; the treasury state ignores ticks older than
the ones it has applied, so a replay changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import faust

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.exceptions import RecordError
from cpwatch.internal_topics import TickBatch
from cpwatch.records import PriceTick
from cpwatch.settings import Settings
from runtime.consumers import commit_polled, group_consumer
from runtime.deadletter import dead_letter
from runtime.range_reader import Message, Replayed

STAGE = "route-ticks"
BATCH = 2_000  # ~300 kB of ticks per symbol message at most: well under Kafka's 1 MB
WITHIN_MS = 50


async def route_batch(
    records: list[Any], by_symbol: faust.TopicT, dlq: faust.TopicT
) -> list[Awaitable[Any]]:
    """Send one message per symbol (its ticks, compact, newline-separated); bad ticks are
    dead-lettered. Returns the delivery futures to await before committing."""
    per_symbol: dict[str, list[bytes]] = {}
    venues: set[str] = set()
    pending: list[Awaitable[Any]] = []
    for r in records:
        try:
            tick = PriceTick.parse(r.value)
        except RecordError as exc:
            where = Replayed(r.key, r.value, Message(r.topic, r.partition, r.offset))
            pending.append(await dead_letter(dlq, STAGE, str(exc), where, r.value or b""))
            continue
        per_symbol.setdefault(tick.symbol, []).append(tick.to_bytes())
        venues.add(tick.venue)
    for venue in venues:
        metrics.tick_seen(venue)
    for symbol, ticks in per_symbol.items():
        value = TickBatch.of(ticks).encode()
        pending.append(await by_symbol.send(key=symbol.encode(), value=value))
    return pending


async def run(settings: Settings, by_symbol: faust.TopicT, dlq: faust.TopicT) -> None:
    consumer = group_consumer(settings, t.PRICE_TICKS, STAGE)
    await consumer.start()
    try:
        while True:
            polled = await consumer.getmany(timeout_ms=WITHIN_MS, max_records=BATCH)
            records = [m for msgs in polled.values() for m in msgs]
            if not records:
                continue
            metrics.count_in(STAGE, t.PRICE_TICKS, len(records))
            await asyncio.gather(*await route_batch(records, by_symbol, dlq))
            await commit_polled(consumer, polled, STAGE)
    finally:
        await consumer.stop()
