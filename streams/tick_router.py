"""route-ticks: price ticks → one re-keyed message per symbol and batch, with a plain consumer.

Price ticks are the one high-volume input. Read through a Faust agent they hit Faust's flow
control: once a partition's stream buffer was full, Faust stopped fetching it and, in the kill
-9 fault test, sometimes never resumed (the worker stalled with 16k ticks unread), or dropped
already-fetched ticks and committed past them. Routing needs no state, so it reads with its own
consumer group, sends the batch's re-keyed messages, and commits the polled offsets only once
Kafka acknowledged them. A crash replays the batch; the treasury state ignores ticks older than
the ones it has applied, so a replay changes nothing.

Each poll is validated once, columnwise (``decode_ticks``: the reason of a dead letter is the one
``PriceTick.parse`` gives), and forwarded as binary columns, so the treasury parses no JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import faust

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.settings import Settings
from runtime.consumers import IDLE_POLL_MS, commit_polled, group_consumer, pace_fetches
from runtime.deadletter import dead_letter
from runtime.range_reader import Message, Replayed
from streams.columnar_ticks import decode_ticks, to_frame

STAGE = "route-ticks"
BATCH = 10_000  # ticks per poll: a symbol message of at most ~180 kB (18 bytes a tick)
# An empty poll waits IDLE_POLL_MS (runtime/consumers.py), as the sinks' and deliveries' do.
# The first empty poll after records, shorter: it alone decides when the long fetch wait
# starts. At IDLE_POLL_MS, every burst was followed by a second of 100 ms fetches (12 fetches
# per burst with 200-tick bursts, the most of any of the worker's consumers).
QUIET_POLL_MS = 200
# The broker's longest wait on a fetch that finds no data. While one partition's records are
# still being routed, aiokafka fetches the others, mostly empty, in a request that holds the
# connection for this long; the busy partition's next fetch waits behind it (at aiokafka's 500 ms
# default, route-ticks stood idle for ~0.4 s of a 1.3 s run in bench_pipeline).
# Once a poll waited QUIET_POLL_MS for nothing, the wait is long (runtime/consumers.py): at
# 100 ms the idle loop fetched ten times a second, a third of an idle worker's CPU.
FETCH_WAIT_MS = 100


async def route_batch(
    records: list[Any], by_symbol: faust.TopicT, dlq: faust.TopicT
) -> list[Awaitable[Any]]:
    """Send one message per symbol (its valid ticks, as binary columns); bad ticks are
    dead-lettered. Returns the delivery futures to await before committing."""
    cols = decode_ticks([r.value for r in records])
    pending: list[Awaitable[Any]] = []
    for bad in cols.bad:
        r = records[bad.index]
        where = Replayed(r.key, r.value, Message(r.topic, r.partition, r.offset))
        pending.append(await dead_letter(dlq, STAGE, bad.reason, where, r.value or b""))
    for venue in set(cols.venue):
        metrics.tick_seen(venue)
    for symbol, part in cols.by_symbol().items():
        value = to_frame(symbol, part).encode()
        pending.append(await by_symbol.send(key=symbol.encode(), value=value))
    return pending


async def run(settings: Settings, by_symbol: faust.TopicT, dlq: faust.TopicT) -> None:
    consumer = group_consumer(settings, t.PRICE_TICKS, STAGE, fetch_max_wait_ms=FETCH_WAIT_MS)
    await consumer.start()
    # One batch in flight: the next poll is routed while Kafka acknowledges the previous one,
    # whose offsets are committed once it is acknowledged (commits stay in poll order). Waiting
    # for each acknowledgement before the next poll left the loop idle for about a third of
    # every batch (bench_pipeline).
    in_flight: tuple[list[Awaitable[Any]], dict[Any, list[Any]]] | None = None
    idle = True
    try:
        while True:
            # With a batch in flight, take only what is already fetched: when nothing is, the
            # batch is committed now, not after an empty poll's full wait (a second after every
            # burst, the last batch's offsets were still uncommitted).
            wait = 0 if in_flight is not None else IDLE_POLL_MS if idle else QUIET_POLL_MS
            polled = await consumer.getmany(timeout_ms=wait, max_records=BATCH)
            records = [m for msgs in polled.values() for m in msgs]
            if records or wait:  # set before the fetcher's next request
                idle = not records
                pace_fetches(consumer, idle=idle, busy_ms=FETCH_WAIT_MS)
            routed = None
            if records:
                metrics.count_in(STAGE, t.PRICE_TICKS, len(records))
                routed = (await route_batch(records, by_symbol, dlq), polled)
            if in_flight is not None:
                await asyncio.gather(*in_flight[0])
                await commit_polled(consumer, in_flight[1], STAGE)
            in_flight = routed
    finally:
        await consumer.stop()
