"""Faust agents: price ticks → reference price per symbol → the asset's prices to holder slots.

Ticks are keyed ``venue:symbol``; route-ticks re-keys them by symbol onto one internal topic, and
a single agent per symbol partition owns the symbol's reference price, kept in a Faust table
(changelogged, restored on restart) and in a decoded in-memory cache. Holdings are BTC: the
asset symbol's reference prices go on, numbered, to every partition of ``holder-prices``, where
the holder stage (streams/holder_agent.py) values holders and runs their rules, spread over the
workers by holder.

Within a batch, a symbol's consecutive messages go to the processor as one call of at least
``CHUNK`` ticks (route-ticks sends a message per poll, often of one tick), and the loop runs
between calls: the columnar engine's fixed cost per call is paid per chunk, not per message,
and the asset's prices leave as one series per chunk. A chunk holds one frame kind
(cpwatch/internal_topics.py): decoded columns from route-ticks, or JSON lines from messages an
earlier worker wrote.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import faust

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.exceptions import RecordError
from cpwatch.internal_topics import (
    HOLDER_PRICES,
    VALUATION_INPUT,
    HandoverFrame,
    PriceSeriesFrame,
    TickBatch,
    decode_tick_message,
    internal_topic,
)
from cpwatch.records import HoldingUpdate
from cpwatch.settings import Settings
from runtime.deadletter import dead_letter
from runtime.faust_app import Topics
from runtime.nudge import watch_stalls
from runtime.positions import admit
from runtime.range_reader import GroupStart, RangeReader
from runtime.table_state import changelog_ready, run_batches
from runtime.table_states import TableStates
from streams import holder_agent, tick_router
from streams.columnar import to_us
from streams.columnar_ticks import TickColumns, from_frame
from streams.rules import load_rules
from streams.treasury_processor import BatchOutput, PriceSeries, SymbolState, TreasuryProcessor

log = logging.getLogger(__name__)

BATCH = 2_000  # by-symbol messages per treasury batch (each carries up to 2,000 ticks)
WITHIN_S = 0.05
CHUNK = 2_000  # ticks per processor call at least, when a batch has that many for a symbol
VENUE_LOG_LINES = 10  # venue events logged one by one per batch; the rest are summarised
# The nudge (runtime/nudge.py): an empty tick batch, it only reveals a hole to the guard.
NUDGE = TickBatch(()).encode()


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    processor = TreasuryProcessor(
        load_rules(settings.rules_path),
        timedelta(seconds=settings.price_staleness_s),
        settings.price_divergence_pct,
        engine=settings.treasury_engine,
        holders_apart=True,
    )
    by_symbol, holder_prices = (
        app.topic(
            internal_topic(settings, name),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
            internal=True,
        )
        for name in (VALUATION_INPUT, HOLDER_PRICES)
    )
    holder_agent.register(app, topics, settings, holder_prices)
    slot_keys = holder_agent.slot_keys(settings.topic_partitions)
    # One record per symbol holds its reference price and how many prices it handed on: a
    # single changelog write per batch, so a crash can never restore one part newer than
    # another (seen in the kill -9 fault test when they were three tables). Written outside
    # any single event's context, it is placed by the producer's partitioner on the raw
    # symbol key: the partition the by-symbol topic used, keeping table and stream aligned.
    state_table = app.Table(
        "treasury-state",
        default=None,
        partitions=settings.topic_partitions,
        key_type=bytes,  # bytes keys: the "raw" codec
        use_partitioner=True,
    )
    states: TableStates[SymbolState] = TableStates(
        state_table, lambda key, record: processor.from_record(key.decode(), record)
    )
    # Offsets are only checked in at-least-once mode: transaction markers make real holes.
    guard = settings.processing_guarantee == "at_least_once"
    read = RangeReader(settings)
    start = GroupStart(settings, app.conf.id)
    if guard:
        start.follow(app, by_symbol.get_topic_name())

    @app.on_partitions_revoked.connect
    async def _drop_cache(app: faust.App, revoked: Any, **_: Any) -> None:
        # Another worker may own these symbols now: reload from the table, but only at the next
        # batch boundary. Clearing mid-batch made the rest of the batch start from the table's
        # older state and save it over the first part's updates (kill -9 fault test).
        states.reload_pending = True

    if guard:
        watch_stalls(app, by_symbol, states.expected_at, start, stage="treasury", nudge=NUDGE)

    @app.task
    async def route_ticks() -> None:
        # A plain consumer group, not an agent: see streams/tick_router.py.
        await tick_router.run(settings, by_symbol, topics[t.DEAD_LETTER])

    @app.agent(topics[t.HOLDINGS], name="check-holdings", concurrency=1)
    async def check_holdings(stream: faust.StreamT) -> None:
        # The treasury reads holdings through its table; this group only dead-letters, once,
        # what the table skips as malformed.
        async for event in stream.events():
            metrics.count_in("check-holdings", t.HOLDINGS)
            try:
                HoldingUpdate.parse(event.value)
            except RecordError as exc:
                await dead_letter(
                    topics[t.DEAD_LETTER], "check-holdings", str(exc), event, event.value
                )

    @app.agent(by_symbol, name="treasury", concurrency=1)  # stateful: never more than 1
    async def treasury(stream: faust.StreamT) -> None:
        # Batches: state is changelogged once per batch, not per tick. Offsets of a batch are
        # committed after the batch, so a crash replays it whole and the restored state drops
        # what it already saw (event time never goes back); prices it sends again carry the
        # same numbers, which the holder slots drop.
        await run_batches(
            app, stream, BATCH, WITHIN_S, treasury_batch, states.restart, stage="treasury"
        )

    async def treasury_batch(batch: list[Any]) -> None:
        t0 = time.perf_counter()
        await changelog_ready(app, state_table)  # states.save writes without an event
        states.reload_if_pending()
        fresh = await admit(
            batch, states.positions, read=read, stage="treasury", enabled=guard, start=start
        )
        out, sent = BatchOutput(), []
        fresh = [e for e in fresh if e.value != NUDGE]  # counted by the guard, nothing to value
        for symbol, events in _by_symbol(fresh).items():
            st = states.get(symbol.encode())
            chunk = _Chunk()
            for i, event in enumerate(events):
                st.partition = event.message.partition
                try:
                    ticks = _ticks_of(event.value)
                except RecordError as exc:
                    reason, body = str(exc), event.value or b""
                    out.rejected.append((body, reason))
                    out.rejected_at.append(-1)
                    dlq = topics[t.DEAD_LETTER]
                    sent.append(await dead_letter(dlq, "treasury", reason, event, body))
                    ticks = ()
                if len(ticks) and not chunk.takes(ticks):  # the frame kind changed
                    sent += await run_chunk(st, symbol, chunk, out)
                    chunk = _Chunk()
                if len(ticks):
                    chunk.add(ticks, event)
                if chunk.size and (chunk.size >= CHUNK or i == len(events) - 1):
                    sent += await run_chunk(st, symbol, chunk, out)
                    chunk = _Chunk()
                    # Let the loop run between chunks (heartbeats of the plain consumer
                    # groups, Faust's timers): one call never holds it for long.
                    await asyncio.sleep(0)
        _report(out)
        # State is saved only once Kafka acknowledged what the batch sent: restored state then
        # never claims prices the holder stage could have lost with the process.
        await asyncio.gather(*sent)
        for key, st in states.save({e.message.partition for e in batch}):
            if (price := st.ref.price(key.decode())) is not None:
                metrics.set_reference_price(key.decode(), price)
        metrics.PROCESSING.labels("treasury").observe(time.perf_counter() - t0)

    async def send_series(series: PriceSeries) -> list[Any]:
        """The same frame to every holder slot, straight to Faust's producer (its ``Topic.send``
        costs several times the send itself: py-spy, bench_scale)."""
        as_of = None if series.end_as_of is None else to_us(series.end_as_of)
        frame = PriceSeriesFrame(
            series.symbol,
            series.first,
            series.t_us.astype("<i8").tobytes(),
            series.price.astype("<f8").tobytes(),
            series.end_price,
            as_of,
        ).encode()
        return await send_to_slots(frame)

    async def send_to_slots(value: bytes) -> list[Any]:
        producer, name = app.producer, holder_prices.get_topic_name()
        return [
            await producer.send(name, key, value, slot, None, None)
            for slot, key in enumerate(slot_keys)
        ]

    async def run_chunk(st: SymbolState, symbol: str, chunk: _Chunk, out: BatchOutput) -> list[Any]:
        """One processor call over consecutive messages of one symbol: the engine's per-call
        cost is paid once, not per message. Cutting a symbol's ticks anywhere gives the same
        outputs, so this equals a call per message; each rejected tick is dead-lettered against
        the message it came in."""
        sent = []
        if st.handover is not None:  # a record from before the holder stage: hand it on first
            frame = HandoverFrame(symbol, st.handover).encode()
            sent += await send_to_slots(frame)
            st.handover = None
            log.info("treasury: %s handed its holders to the holder slots", symbol)
        prices_before, rejected_before = len(out.prices), len(out.rejected)
        processor.process(st, symbol, chunk.ticks(), (), out)
        for series in out.prices[prices_before:]:
            sent += await send_series(series)
        owners = chunk.owners
        starts = [first for first, _ in owners]
        new = out.rejected[rejected_before:], out.rejected_at[rejected_before:]
        for (body, reason), at in zip(*new, strict=True):
            event = owners[bisect_right(starts, at) - 1][1]
            sent.append(await dead_letter(topics[t.DEAD_LETTER], "treasury", reason, event, body))
        return sent


def _ticks_of(value: bytes | None) -> Sequence[bytes] | TickColumns:
    """A ``valuation-input`` message's ticks: columns, or an earlier worker's JSON lines."""
    frame = decode_tick_message(value)
    return frame.ticks if isinstance(frame, TickBatch) else from_frame(frame)


@dataclass
class _Chunk:
    """Consecutive messages of one symbol for one processor call, all of one frame kind."""

    lines: list[bytes] = field(default_factory=list)
    columns: list[TickColumns] = field(default_factory=list)
    owners: list[tuple[int, Any]] = field(default_factory=list)  # (first tick's index, event)
    size: int = 0

    def takes(self, ticks: Sequence[bytes] | TickColumns) -> bool:
        """Empty, or holding the same frame kind as ``ticks``."""
        return not self.size or bool(self.columns) == isinstance(ticks, TickColumns)

    def add(self, ticks: Sequence[bytes] | TickColumns, event: Any) -> None:
        self.owners.append((self.size, event))
        if isinstance(ticks, TickColumns):
            self.columns.append(ticks)
        else:
            self.lines.extend(ticks)
        self.size += len(ticks)

    def ticks(self) -> Sequence[bytes] | TickColumns:
        if not self.columns:
            return self.lines
        if len(self.columns) == 1:
            return self.columns[0]
        return TickColumns.concat(self.columns, [len(c) for c in self.columns])


def _by_symbol(events: list[Any]) -> dict[str, list[Any]]:
    """Events by symbol (their key), in first-seen order; each symbol's in input order."""
    out: dict[str, list[Any]] = {}
    for event in events:
        out.setdefault(event.key.decode(), []).append(event)
    return out


def _report(out: BatchOutput) -> None:
    # Every venue event is counted; a batch logs the first VENUE_LOG_LINES of them and a
    # summary of the rest: two venues flapping around the divergence threshold on a backlog
    # raised thousands of lines a minute, and formatting them was 5 % of the worker's CPU.
    kinds: Counter[str] = Counter()
    for i, ev in enumerate(out.venue_events):
        metrics.count_venue_event(ev.symbol, ev.venue, ev.kind)
        if i < VENUE_LOG_LINES:
            log.warning("venue %s", json.dumps(ev.to_dict(), default=str))
        else:
            kinds[ev.kind] += 1
    if kinds:
        more = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
        log.warning("venue: %d more events in this batch (%s)", kinds.total(), more)
