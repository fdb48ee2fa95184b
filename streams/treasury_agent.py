"""Faust agents: price ticks + holdings → reference price → valuations → rules → alerts.

Ticks are keyed ``venue:symbol``; route-ticks re-keys them by symbol onto one internal topic, and
a single agent per symbol partition owns the reference price and the treasury book (holdings
timeline and rule state), kept in a Faust table (changelogged, restored on restart) and in a
decoded in-memory cache. Holdings do not travel with the ticks: every batch first catches the
holdings table up to the topic's end (streams/holdings_table.py), so a holding Kafka
acknowledged before a tick was produced is always in force for that tick; one arriving later
follows the late-holding rules of streams/treasury.py, as the backtest does.

Within a batch, a symbol's consecutive messages go to the processor as one call of at least
``CHUNK`` ticks (route-ticks sends a message per poll, often of one tick), and the loop runs
between calls: the columnar engine's fixed cost per call is paid per chunk, not per message.
A chunk holds one frame kind (cpwatch/internal_topics.py): decoded columns from route-ticks, or
JSON lines from messages an earlier worker wrote.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import faust
import orjson

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.exceptions import RecordError
from cpwatch.internal_topics import VALUATION_INPUT, TickBatch, decode_tick_message, internal_topic
from cpwatch.records import HoldingUpdate, dumps
from cpwatch.settings import Settings
from cpwatch.state_versions import StateVersionError
from runtime.deadletter import dead_letter
from runtime.faust_app import Topics
from runtime.nudge import watch_stalls
from runtime.positions import InputPositions, admit
from runtime.range_reader import GroupStart, RangeReader
from runtime.table_state import changelog_ready, stop_worker
from streams import tick_router
from streams.columnar_ticks import TickColumns, from_frame
from streams.holdings_table import HoldingsTable
from streams.rules import load_rules
from streams.treasury_processor import BatchOutput, SymbolState, TreasuryProcessor

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
    )
    by_symbol = app.topic(
        internal_topic(settings, VALUATION_INPUT),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
        internal=True,
    )
    # One record per symbol holds the reference price, the holdings and the rule state: a
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
    states = SymbolStates(processor, state_table)
    # Offsets are only checked in at-least-once mode: transaction markers make real holes.
    guard = settings.processing_guarantee == "at_least_once"
    read = RangeReader(settings)
    start = GroupStart(settings, app.conf.id)
    holdings_table = HoldingsTable(settings)

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
        # Batches: state is changelogged once per batch, not per tick, and only the last
        # valuation per holder and minute is sent (the index keeps one per minute anyway).
        # Offsets of a batch are committed after the batch, so a crash replays it whole and
        # the restored state drops what it already saw (event time never goes back).
        async for batch in stream.take_events(BATCH, within=WITHIN_S):
            try:
                await treasury_batch(batch)
            except StateVersionError as exc:  # a newer worker's state: stop, never misread
                await stop_worker(app, exc)

    async def treasury_batch(batch: list[Any]) -> None:
        t0 = time.perf_counter()
        await changelog_ready(app, state_table)  # states.save writes without an event
        states.reload_if_pending()
        await holdings_table.catch_up()  # holdings before ticks, see the module docstring
        fresh = await admit(
            batch, states.positions, read=read, stage="treasury", enabled=guard, start=start
        )
        out, sent = BatchOutput(), []
        fresh = [e for e in fresh if e.value != NUDGE]  # counted by the guard, nothing to value
        for symbol, events in _by_symbol(fresh).items():
            st = states.get(symbol)
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
        sent += await send_valuations(out.valuations)
        # State is saved only once Kafka acknowledged the batch's alerts: restored state
        # then never claims a crossing whose alert could have been lost with the process.
        await asyncio.gather(*sent)
        states.save({e.message.partition for e in batch})
        metrics.PROCESSING.labels("treasury").observe(time.perf_counter() - t0)

    async def send_valuations(docs: dict[str, dict[str, Any]]) -> list[Any]:
        """One message per holder and minute, sent straight to Faust's producer: one valuation
        per price tick on a backlog, and Faust's ``Topic.send`` (schema, sensors, callbacks)
        cost several times the send itself (py-spy, bench_scale). Acknowledgements are awaited
        with the batch's alerts, before its state is saved."""
        producer, name = app.producer, topics[t.TREASURY_VALUATIONS].get_topic_name()
        sent, last = [], {}
        for doc in docs.values():
            key = doc["holder"].encode()
            sent.append(await producer.send(name, key, orjson.dumps(doc), None, None, None))
            last[doc["holder"]] = doc["value_usd"]
        for holder, value in last.items():
            metrics.set_treasury_value(holder, value)
        metrics.count_out("treasury", t.TREASURY_VALUATIONS, len(docs))
        return sent

    async def run_chunk(st: SymbolState, symbol: str, chunk: _Chunk, out: BatchOutput) -> list[Any]:
        """One processor call over consecutive messages of one symbol: the engine's per-call
        cost is paid once, not per message (the columnar engine's is a few ms per holder and
        rule). Cutting a symbol's ticks anywhere gives the same outputs, so this equals a call
        per message; each rejected tick is dead-lettered against the message it came in."""
        alerts_before, rejected_before = len(out.alerts), len(out.rejected)
        processor.process(st, symbol, chunk.ticks(), holdings_table.rows, out)
        sent = []
        for alert in out.alerts[alerts_before:]:
            msg = dumps(alert.to_message())
            sent.append(await topics[t.ALERTS].send(key=alert.holder.encode(), value=msg))
        owners = chunk.owners
        starts = [first for first, _ in owners]
        new = out.rejected[rejected_before:], out.rejected_at[rejected_before:]
        for (body, reason), at in zip(*new, strict=True):
            event = owners[bisect_right(starts, at) - 1][1]
            sent.append(await dead_letter(topics[t.DEAD_LETTER], "treasury", reason, event, body))
        return sent


class SymbolStates:
    """Decoded per-symbol states over the Faust table, with the input positions they expect."""

    def __init__(self, processor: TreasuryProcessor, table: Any) -> None:
        self.processor, self.table = processor, table
        self.cache: dict[str, SymbolState] = {}
        self.positions = InputPositions()
        self.reload_pending = True  # at start and on revocation; honoured between batches

    def get(self, symbol: str, record: dict[str, Any] | None = None) -> SymbolState:
        st = self.cache.get(symbol)
        if st is None:
            record = record or self.table.get(symbol.encode())
            st = self.cache[symbol] = self.processor.from_record(symbol, record)
        return st

    def expected_at(self, partition: int) -> int | None:
        """The next offset expected on ``partition``; while a reload is pending, the one the
        table's states give (read only: the cache is replaced between batches, never here)."""
        if not self.reload_pending:
            return self.positions.expected.get(partition)
        return _stored_positions(self.table.values()).get(partition)

    def reload_if_pending(self) -> None:
        """Restart from the table after a rebalance: every local symbol, and the offsets the
        saved states expect next."""
        if not self.reload_pending:
            return
        self.reload_pending = False
        self.cache.clear()
        records = list(self.table.items())
        for key, record in records:
            self.get(key.decode(), record)
        self.positions.reset(_stored_positions(record for _, record in records))

    def save(self, partitions: set[int]) -> None:
        """Every symbol of a partition seen in this batch records the partition's next offset,
        so a restore knows exactly where its input resumes."""
        for symbol, st in self.cache.items():
            if st.partition not in partitions:
                continue
            st.next_offset = self.positions.expected.get(st.partition)
            self.table[symbol.encode()] = st.to_record()
            if (price := st.ref.price(symbol)) is not None:
                metrics.set_reference_price(symbol, price)


def _stored_positions(records: Iterable[dict[str, Any] | None]) -> dict[int, int]:
    """The next input offset per partition the saved states expect: the lowest of the
    partition's symbols, so no symbol misses a message (``SymbolState.to_record``'s input)."""
    expected: dict[int, int] = {}
    for record in records:
        part, nxt = (record or {}).get("input") or (None, None)
        if part is not None and nxt is not None:
            expected[part] = min(nxt, expected.get(part, nxt))
    return expected


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
    if out.late:
        metrics.HOLDINGS_LATE.inc(len(out.late))
        seen = out.late_seen_until.isoformat() if out.late_seen_until else "?"
        for u, rebased in out.late:
            log.warning(
                "late holding: %s as of %s arrived after prices up to %s were valued; "
                "it applies from the next price%s",
                u.holder,
                u.as_of.isoformat(),
                seen,
                ", rules re-based" if rebased else "",
            )
    metrics.count_out("treasury", t.ALERTS, len(out.alerts))
