"""Faust agents: price ticks + holdings → reference price → valuations → rules → alerts.

Ticks are keyed ``venue:symbol`` and holdings by holder, so neither topic co-locates what one
valuation needs. Both are re-keyed by symbol onto one internal topic; a single agent per symbol
partition then owns the reference price, the holdings timeline and the rule state, each kept
in a Faust table (changelogged, restored on restart) and in a decoded in-memory cache.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import faust

from cpwatch import topics as t
from cpwatch.exceptions import RecordError
from cpwatch.records import HoldingUpdate, PriceTick, dumps
from cpwatch.settings import Settings
from streams.alerts import iso_utc
from streams.app import Topics
from streams.deadletter import dead_letter
from streams.holdings import HoldingsTimeline, value_usd
from streams.refprice import ReferencePrice
from streams.rules import Rule, RuleEngine, load_rules

log = logging.getLogger(__name__)

ASSET_SYMBOL = "BTC-USD"  # holdings are BTC: they are valued at this symbol's reference price


def rules_path(settings: Settings) -> Path:
    return settings.rules_file or Path(str(resources.files("cpwatch") / "data" / "rules.yaml"))


@dataclass
class SymbolState:
    """Decoded state of one symbol; mirrors three table entries."""

    ref: ReferencePrice
    holdings: HoldingsTimeline
    engine: RuleEngine


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    rules: tuple[Rule, ...] = load_rules(rules_path(settings))
    staleness = timedelta(seconds=settings.price_staleness_s)
    by_symbol = app.topic(
        f"{settings.topic_prefix}{settings.faust_app_id}-valuation-input",
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
        internal=True,
    )
    ref_table = app.Table("refprice", default=None, partitions=settings.topic_partitions)
    holdings_table = app.Table("holdings", default=None, partitions=settings.topic_partitions)
    engine_table = app.Table("rule-state", default=None, partitions=settings.topic_partitions)
    cache: dict[str, SymbolState] = {}

    @app.on_partitions_revoked.connect
    async def _drop_cache(app: faust.App, revoked: Any, **_: Any) -> None:
        cache.clear()  # another worker may own these symbols now; reload from the tables

    def state_for(symbol: str) -> SymbolState:
        st = cache.get(symbol)
        if st is None:
            ref_d = ref_table.get(symbol)
            hold_d, eng_d = holdings_table.get(symbol), engine_table.get(symbol)
            st = SymbolState(
                ref=ReferencePrice(staleness, settings.price_divergence_pct, state=ref_d),
                holdings=HoldingsTimeline.from_dict(hold_d) if hold_d else HoldingsTimeline(),
                engine=RuleEngine.from_dict(rules, eng_d) if eng_d else RuleEngine(rules),
            )
            cache[symbol] = st
        return st

    @app.agent(topics[t.PRICE_TICKS], name="route-ticks", concurrency=1)
    async def route_ticks(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                tick = PriceTick.parse(event.value)
            except RecordError as exc:
                await dead_letter(topics[t.DEAD_LETTER], "route-ticks", str(exc), event, event.value)
                continue
            await by_symbol.send(key=tick.symbol.encode(), value=b"T" + event.value)

    @app.agent(topics[t.HOLDINGS], name="route-holdings", concurrency=1)
    async def route_holdings(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                HoldingUpdate.parse(event.value)
            except RecordError as exc:
                await dead_letter(topics[t.DEAD_LETTER], "route-holdings", str(exc), event, event.value)
                continue
            await by_symbol.send(key=ASSET_SYMBOL.encode(), value=b"H" + event.value)

    @app.agent(by_symbol, name="treasury", concurrency=1)  # stateful: never more than 1
    async def treasury(stream: faust.StreamT) -> None:
        async for event in stream.events():
            symbol = event.key.decode()
            try:
                await _process(symbol, event.value)
            except (RecordError, ValueError, KeyError) as exc:
                await dead_letter(topics[t.DEAD_LETTER], "treasury", repr(exc), event, event.value)

    async def _process(symbol: str, raw: bytes) -> None:
        st = state_for(symbol)
        kind, body = raw[:1], raw[1:]
        if kind == b"H":
            update = HoldingUpdate.parse(body)
            st.holdings.add(update)
            holdings_table[symbol] = st.holdings.to_dict()
            price, as_of = st.ref.price(symbol), st.ref.as_of(symbol)
            if price is not None and as_of is not None:
                held = st.holdings.at(update.holder, as_of)
                if held is not None:
                    await _send_valuation(held, symbol, as_of, price)
            return
        tick = PriceTick.parse(body)
        previous = st.ref.price(symbol)
        price, events = st.ref.update(tick)
        for ev in events:
            log.warning("venue %s", json.dumps(ev.to_dict(), default=str))
        ref_table[symbol] = st.ref.to_dict()
        if price is None:
            return
        now = st.ref.as_of(symbol)
        assert now is not None  # a price implies at least one tick
        held = st.holdings.in_force(now)
        alerts = st.engine.on_price(now, price, held, symbol=symbol)
        # Alerts are sent before the new rule state is changelogged: after a crash the restored
        # state never claims a crossing whose alert was not at least handed to the producer.
        for alert in alerts:
            await topics[t.ALERTS].send(key=alert.holder.encode(), value=dumps(alert.to_message()))
        engine_table[symbol] = st.engine.to_dict()
        if price != previous:
            for h in held:
                await _send_valuation(h, symbol, now, price)

    async def _send_valuation(h: HoldingUpdate, symbol: str, ts: Any, price: float) -> None:
        doc = {
            # One document per holder and minute: later values in the same minute overwrite,
            # which bounds the index to holders x minutes however fast ticks come.
            "id": f"{h.holder}|{iso_utc(ts)[:16]}",
            "holder": h.holder,
            "name": h.name or h.holder,
            "kind": h.kind,
            "symbol": symbol,
            "ts": iso_utc(ts),
            "price": price,
            "btc": h.btc,
            "value_usd": value_usd(h, price),
        }
        await topics[t.TREASURY_VALUATIONS].send(key=h.holder.encode(), value=dumps(doc))
