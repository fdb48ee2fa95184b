"""Faust agents: price ticks + holdings → reference price → valuations → rules → alerts.

Ticks are keyed ``venue:symbol``; route-ticks re-keys them by symbol onto one internal topic, and
a single agent per symbol partition owns the reference price and the treasury book (holdings
timeline and rule state), kept in a Faust table (changelogged, restored on restart) and in a
decoded in-memory cache. Holdings do not travel with the ticks: every batch first catches the
holdings table up to the topic's end (streams/holdings_table.py), so a holding Kafka
acknowledged before a tick was produced is always in force for that tick; one arriving later
follows the late-holding rules of streams/treasury.py, as the backtest does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import faust

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.exceptions import RecordError
from cpwatch.records import HoldingUpdate, PriceTick, dumps
from cpwatch.settings import Settings
from streams import tick_router
from streams.alerts import iso_utc
from streams.app import Topics
from streams.deadletter import dead_letter
from streams.holdings import HoldingsTimeline, value_usd
from streams.holdings_table import HoldingsTable
from streams.positions import InputPositions, admit
from streams.range_reader import RangeReader
from streams.refprice import ReferencePrice
from streams.rules import Rule, RuleEngine, load_rules
from streams.treasury import TreasuryBook

log = logging.getLogger(__name__)

BATCH = 2_000  # by-symbol messages per treasury batch (each carries up to 2,000 ticks)
WITHIN_S = 0.05
ASSET_SYMBOL = "BTC-USD"  # holdings are BTC: they are valued at this symbol's reference price


@dataclass
class SymbolState:
    """Decoded state of one symbol; mirrors its table record."""

    ref: ReferencePrice
    book: TreasuryBook
    partition: int | None = None  # of the by-symbol topic; saved with the next offset there
    synced: int = 0  # rows of the holdings table applied to ``book`` (in memory only)


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    rules: tuple[Rule, ...] = load_rules(settings.rules_path)
    staleness = timedelta(seconds=settings.price_staleness_s)
    by_symbol = app.topic(
        f"{settings.topic_prefix}{settings.faust_app_id}-valuation-input",
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
    cache: dict[str, SymbolState] = {}
    positions = InputPositions()
    # Offsets are only checked in at-least-once mode: transaction markers make real holes.
    guard = settings.processing_guarantee == "at_least_once"
    sent: list[Any] = []  # delivery futures of this batch's alerts
    reload_pending: list[bool] = []  # set on revocation, honoured between batches
    read = RangeReader(settings)
    holdings_table = HoldingsTable(settings)

    @app.on_partitions_revoked.connect
    async def _drop_cache(app: faust.App, revoked: Any, **_: Any) -> None:
        # Another worker may own these symbols now: reload from the table, but only at the next
        # batch boundary. Clearing mid-batch made the rest of the batch start from the table's
        # older state and save it over the first part's updates (kill -9 fault test).
        reload_pending.append(True)

    def state_for(symbol: str, saved: dict[str, Any] | None = None) -> SymbolState:
        st = cache.get(symbol)
        if st is None:
            saved = saved or state_table.get(symbol.encode()) or {}
            st = SymbolState(
                ref=ReferencePrice(
                    staleness, settings.price_divergence_pct, state=saved.get("ref")
                ),
                book=TreasuryBook(
                    RuleEngine.from_dict(rules, saved["engine"])
                    if saved.get("engine")
                    else RuleEngine(rules),
                    HoldingsTimeline.from_dict(saved["holdings"])
                    if saved.get("holdings")
                    else None,
                    symbol,
                ),
                partition=(saved.get("input") or [None])[0],
            )
            cache[symbol] = st
        return st

    def cache_partition(symbol: str, partition: int) -> None:
        state_for(symbol).partition = partition

    def reload() -> None:
        """Restart from the table after a rebalance: every local symbol, and the offsets the
        saved states expect next (the lowest per partition, so no symbol misses a message)."""
        cache.clear()
        expected: dict[int, int] = {}
        for key, saved in list(state_table.items()):
            st = state_for(key.decode(), saved)
            nxt = (saved.get("input") or [None, None])[1]
            if st.partition is not None and nxt is not None:
                expected[st.partition] = min(nxt, expected.get(st.partition, nxt))
        positions.reset(expected)

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
            if reload_pending:
                reload()
                reload_pending.clear()
            t0 = time.perf_counter()
            touched: set[str] = set()
            await holdings_table.catch_up()  # holdings before ticks, see the module docstring
            valuations: dict[str, dict[str, Any]] = {}
            fresh = await admit(batch, positions, read=read, stage="treasury", enabled=guard)
            for event in fresh:
                symbol = event.key.decode()
                cache_partition(symbol, event.message.partition)
                # route-ticks sends b"B" + newline-separated ticks
                parts = event.value[1:].split(b"\n")
                for part in parts:
                    try:
                        await _process(symbol, part, valuations)
                        touched.add(symbol)
                    except (RecordError, ValueError, KeyError) as exc:
                        dlq = topics[t.DEAD_LETTER]
                        sent.append(await dead_letter(dlq, "treasury", repr(exc), event, part))
            for doc in valuations.values():
                await topics[t.TREASURY_VALUATIONS].send(
                    key=doc["holder"].encode(), value=dumps(doc)
                )
                metrics.set_treasury_value(doc["holder"], doc["value_usd"])
            metrics.count_out("treasury", t.TREASURY_VALUATIONS, len(valuations))
            # State is saved only once Kafka acknowledged the batch's alerts: restored state
            # then never claims a crossing whose alert could have been lost with the process.
            await asyncio.gather(*sent)
            sent.clear()
            # Every symbol of a partition seen in this batch records the partition's next offset,
            # so a restore knows exactly where its input resumes (untouched ones are unchanged).
            parts = {e.message.partition for e in batch}
            for symbol, st in cache.items():
                if symbol not in touched and st.partition not in parts:
                    continue
                state_table[symbol.encode()] = {
                    "ref": st.ref.to_dict(),
                    "holdings": st.book.timeline.to_dict(),
                    "engine": st.book.engine.to_dict(),
                    "input": [st.partition, positions.expected.get(st.partition)]
                    if st.partition is not None
                    else None,
                }
                if (price := st.ref.price(symbol)) is not None:
                    metrics.set_reference_price(symbol, price)
            metrics.PROCESSING.labels("treasury").observe(time.perf_counter() - t0)

    async def _process(symbol: str, body: bytes, valuations: dict[str, dict[str, Any]]) -> None:
        st = state_for(symbol)
        if symbol == ASSET_SYMBOL and st.synced < len(holdings_table.rows):
            _apply_holdings(symbol, st, valuations)
        tick = PriceTick.parse(body)
        previous = st.ref.price(symbol)
        price, events = st.ref.update(tick)
        for ev in events:
            log.warning("venue %s", json.dumps(ev.to_dict(), default=str))
        if price is None:
            return
        now = st.ref.as_of(symbol)
        assert now is not None  # a price implies at least one tick
        for alert in st.book.on_price(now, price):
            sent.append(
                await topics[t.ALERTS].send(
                    key=alert.holder.encode(), value=dumps(alert.to_message())
                )
            )
            metrics.count_out("treasury", t.ALERTS)
        if price != previous:
            for h in st.book.timeline.in_force(now):
                _valuation(valuations, h, symbol, now, price)

    def _apply_holdings(
        symbol: str, st: SymbolState, valuations: dict[str, dict[str, Any]]
    ) -> None:
        applied = st.book.apply_holdings(holdings_table.rows[st.synced :])
        st.synced = len(holdings_table.rows)
        if applied.late:
            metrics.HOLDINGS_LATE.inc(len(applied.late))
            seen_until = st.book.last_evaluated()
            for u in applied.late:
                log.warning(
                    "late holding: %s as of %s arrived after prices up to %s were valued; "
                    "it applies from the next price%s",
                    u.holder,
                    u.as_of.isoformat(),
                    seen_until.isoformat() if seen_until else "?",
                    ", rules re-based" if u.holder in applied.rebased else "",
                )
        price, as_of = st.ref.price(symbol), st.ref.as_of(symbol)
        if price is None or as_of is None:
            return
        for holder in {u.holder for u in applied.changed}:
            held = st.book.timeline.at(holder, as_of)
            if held is not None:
                _valuation(valuations, held, symbol, as_of, price)


def _valuation(
    out: dict[str, dict[str, Any]], h: HoldingUpdate, symbol: str, ts: datetime, price: float
) -> None:
    """Keep the latest valuation per holder and minute (its document id)."""
    stamp = iso_utc(ts)
    doc_id = f"{h.holder}|{stamp[:16]}"
    out[doc_id] = {
        "id": doc_id,
        "holder": h.holder,
        "name": h.name or h.holder,
        "kind": h.kind,
        "symbol": symbol,
        "ts": stamp,
        "price": price,
        "btc": h.btc,
        "value_usd": value_usd(h, price),
    }
