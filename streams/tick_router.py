"""route-ticks: price ticks → one re-keyed message per symbol and batch, with a plain consumer.

Price ticks are the one high-volume input. Read through a Faust agent they hit Faust's flow
control: once a partition's stream buffer was full, Faust stopped fetching it and, in the kill
-9 fault test, sometimes never resumed (the worker stalled with 16k ticks unread), or dropped
already-fetched ticks and committed past them. Routing needs no state, so it reads with its own
consumer group, sends the batch's re-keyed messages, and commits the polled offsets only once
Kafka acknowledged them. A crash replays the batch; the treasury state ignores ticks older than
the ones it has applied, so a replay changes nothing.

Ticks are validated here, a batch at a time (``decode_ticks``: the columnar check, falling back
to ``PriceTick.parse`` for any row it does not accept), so a bad tick is dead-lettered once, by
this stage, against its own topic. A valid tick is forwarded as the bytes it came in, unless
they could break the framing or the message size (a newline, extra fields): then re-serialised.
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
from streams.columnar_ticks import decode_ticks

STAGE = "route-ticks"
BATCH = 2_000  # ticks per symbol message: at most RAW_MAX each, well under Kafka's 1 MB
POLL = 8_000  # records per poll, sent as messages of at most BATCH ticks per symbol
WITHIN_MS = 50
RAW_MAX = 400  # bytes forwarded as they came: 2,000 of them stay well under Kafka's 1 MB


async def route_batch(
    records: list[Any], by_symbol: faust.TopicT, dlq: faust.TopicT
) -> list[Awaitable[Any]]:
    """Send one message per symbol (its ticks, compact, newline-separated); bad ticks are
    dead-lettered. Returns the delivery futures to await before committing."""
    per_symbol: dict[str, list[bytes]] = {}
    venues: set[str] = set()
    pending: list[Awaitable[Any]] = []
    kept = [r for r in records if r.value is not None]
    for r in records:
        if r.value is None:  # a tombstone: PriceTick.parse names it
            pending.append(await _dead_letter(dlq, r, _reason(r.value)))
    lines: list[bytes] = [r.value for r in kept]
    cols = decode_ticks(lines)
    for bad in cols.bad:
        pending.append(await _dead_letter(dlq, kept[bad.index], bad.reason))
    for i, symbol, venue in zip(cols.row.tolist(), cols.symbol, cols.venue, strict=True):
        raw = lines[i]
        if len(raw) > RAW_MAX or b"\n" in raw:
            raw = PriceTick.parse(raw).to_bytes()  # valid: the same checks just passed
        per_symbol.setdefault(symbol, []).append(raw)
        venues.add(venue)
    for venue in venues:
        metrics.tick_seen(venue)
    for symbol, ticks in per_symbol.items():
        for lo in range(0, len(ticks), BATCH):
            value = TickBatch.of(ticks[lo : lo + BATCH]).encode()
            pending.append(await by_symbol.send(key=symbol.encode(), value=value))
    return pending


def _reason(value: bytes | None) -> str:
    try:
        PriceTick.parse(value)
    except RecordError as exc:
        return str(exc)
    return "invalid tick"


async def _dead_letter(dlq: faust.TopicT, r: Any, reason: str) -> Awaitable[Any]:
    where = Replayed(r.key, r.value, Message(r.topic, r.partition, r.offset))
    return await dead_letter(dlq, STAGE, reason, where, r.value or b"")


async def run(settings: Settings, by_symbol: faust.TopicT, dlq: faust.TopicT) -> None:
    consumer = group_consumer(settings, t.PRICE_TICKS, STAGE)
    await consumer.start()
    # One batch in flight: the next poll is routed while Kafka acknowledges the previous one
    # (a round trip per batch was the router's pace); each batch is still committed only once
    # its own messages were acknowledged, in poll order.
    inflight: tuple[list[Awaitable[Any]], dict[Any, list[Any]]] | None = None
    try:
        while True:
            polled = await consumer.getmany(timeout_ms=WITHIN_MS, max_records=POLL)
            records = [m for msgs in polled.values() for m in msgs]
            pending: list[Awaitable[Any]] = []
            if records:
                metrics.count_in(STAGE, t.PRICE_TICKS, len(records))
                pending = await route_batch(records, by_symbol, dlq)
            if inflight is not None:
                await asyncio.gather(*inflight[0])
                await commit_polled(consumer, inflight[1], STAGE)
            inflight = (pending, polled) if records else None
    finally:
        await consumer.stop()
