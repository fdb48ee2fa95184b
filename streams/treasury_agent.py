"""Faust agents: price ticks + holdings → reference price → valuations → rules → alerts.

Ticks are keyed ``venue:symbol`` and holdings by holder, so neither topic co-locates what one
valuation needs. Both are re-keyed by symbol onto one internal topic; a single agent per symbol
partition then owns the reference price, the holdings timeline and the rule state, each kept
in a Faust table (changelogged, restored on restart) and in a decoded in-memory cache.
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
from streams.positions import InputPositions, admit
from streams.range_reader import RangeReader
from streams.refprice import ReferencePrice
from streams.rules import Rule, RuleEngine, load_rules

log = logging.getLogger(__name__)

BATCH = 2_000  # by-symbol messages per treasury batch (each carries up to 2,000 ticks)
WITHIN_S = 0.05
ASSET_SYMBOL = "BTC-USD"  # holdings are BTC: they are valued at this symbol's reference price


@dataclass
class SymbolState:
    """Decoded state of one symbol; mirrors three table entries."""

    ref: ReferencePrice
    holdings: HoldingsTimeline
    engine: RuleEngine
    partition: int | None = None  # of the by-symbol topic; saved with the next offset there


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
                holdings=HoldingsTimeline.from_dict(saved["holdings"])
                if saved.get("holdings")
                else HoldingsTimeline(),
                engine=RuleEngine.from_dict(rules, saved["engine"])
                if saved.get("engine")
                else RuleEngine(rules),
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

    @app.agent(topics[t.HOLDINGS], name="route-holdings", concurrency=1)
    async def route_holdings(stream: faust.StreamT) -> None:
        async for event in stream.events():
            metrics.count_in("route-holdings", t.HOLDINGS)
            try:
                HoldingUpdate.parse(event.value)
            except RecordError as exc:
                await dead_letter(
                    topics[t.DEAD_LETTER], "route-holdings", str(exc), event, event.value
                )
                continue
            await by_symbol.send(key=ASSET_SYMBOL.encode(), value=b"H" + event.value)

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
            valuations: dict[str, dict[str, Any]] = {}
            fresh = await admit(batch, positions, read=read, stage="treasury", enabled=guard)
            for event in fresh:
                symbol = event.key.decode()
                cache_partition(symbol, event.message.partition)
                kind, body = event.value[:1], event.value[1:]
                parts = body.split(b"\n") if kind == b"B" else [body]
                for part in parts:
                    try:
                        await _process(symbol, kind, part, valuations)
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
                    "holdings": st.holdings.to_dict(),
                    "engine": st.engine.to_dict(),
                    "input": [st.partition, positions.expected.get(st.partition)]
                    if st.partition is not None
                    else None,
                }
                if (price := st.ref.price(symbol)) is not None:
                    metrics.set_reference_price(symbol, price)
            metrics.PROCESSING.labels("treasury").observe(time.perf_counter() - t0)

    async def _process(
        symbol: str, kind: bytes, body: bytes, valuations: dict[str, dict[str, Any]]
    ) -> None:
        st = state_for(symbol)
        if kind == b"H":
            update = HoldingUpdate.parse(body)
            st.holdings.add(update)
            price, as_of = st.ref.price(symbol), st.ref.as_of(symbol)
            if price is not None and as_of is not None:
                held = st.holdings.at(update.holder, as_of)
                if held is not None:
                    _valuation(valuations, held, symbol, as_of, price)
            return
        tick = PriceTick.parse(body)
        previous = st.ref.price(symbol)
        price, events = st.ref.update(tick)
        for ev in events:
            log.warning("venue %s", json.dumps(ev.to_dict(), default=str))
        if price is None:
            return
        now = st.ref.as_of(symbol)
        assert now is not None  # a price implies at least one tick
        held = st.holdings.in_force(now)
        for alert in st.engine.on_price(now, price, held, symbol=symbol):
            sent.append(
                await topics[t.ALERTS].send(
                    key=alert.holder.encode(), value=dumps(alert.to_message())
                )
            )
            metrics.count_out("treasury", t.ALERTS)
        if price != previous:
            for h in held:
                _valuation(valuations, h, symbol, now, price)


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
