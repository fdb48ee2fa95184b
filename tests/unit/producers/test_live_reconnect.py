"""Drives producers.live against local fake Coinbase/Kraken servers, including a dropped link."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from cpwatch.records import PriceTick
from producers.live import Backoff, LiveStats, run_live
from producers.summary import Bad
from producers.venues import VenueError, adapter
from tests.fakes.venues import FakeVenue

PRICES = [64000.0 + i for i in range(12)]
GUARD_S = 20.0  # a hung test fails instead of blocking the suite


def _stream(
    venue: FakeVenue, want: int, symbol: str = "BTC-USD"
) -> tuple[list[PriceTick], list[Bad], LiveStats]:
    ticks: list[PriceTick] = []
    bad: list[Bad] = []
    stop = threading.Event()
    guard = threading.Timer(GUARD_S, stop.set)
    guard.start()

    def on_tick(tick: PriceTick) -> None:
        ticks.append(tick)
        if len(ticks) >= want:
            stop.set()

    try:
        stats = asyncio.run(
            run_live(
                adapter(venue.kind),
                [symbol],
                on_tick=on_tick,
                on_bad=bad.append,
                stop=stop,
                url=venue.url,
                backoff=Backoff(base=0.05, cap=0.2, rng=random.Random(7)),  # noqa: S311
            )
        )
    finally:
        guard.cancel()
    return ticks, bad, stats


@pytest.mark.parametrize("kind", ["coinbase", "kraken"])
def test_streams_every_tick_in_order(kind: str) -> None:
    with FakeVenue(kind, PRICES) as venue:
        ticks, bad, stats = _stream(venue, len(PRICES))
    assert [t.price for t in ticks] == PRICES
    assert {t.symbol for t in ticks} == {"BTC-USD"} and {t.venue for t in ticks} == {kind}
    assert ticks[3].ts == venue.tick_time(3)
    assert not bad and stats.connects == 1 and stats.drops == 0
    expected = (
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["ticker"]}
        if kind == "coinbase"
        else {"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}}
    )
    assert venue.subscriptions == [expected]


@pytest.mark.parametrize("kind", ["coinbase", "kraken"])
def test_reconnects_after_a_dropped_connection_and_continues(kind: str) -> None:
    with FakeVenue(kind, PRICES, drop_after=5) as venue:
        ticks, bad, stats = _stream(venue, len(PRICES))
    assert [t.price for t in ticks] == PRICES
    assert stats.connects == 2 and stats.drops == 1
    assert len(venue.subscriptions) == 2  # subscribed again on the new connection
    seqs = [t.seq for t in ticks]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_kraken_without_timestamps_uses_receive_time() -> None:
    with FakeVenue("kraken", PRICES[:3], kraken_timestamps=False) as venue:
        ticks, _, _ = _stream(venue, 3)
    assert all(t.ts.year >= 2025 and t.ts != venue.tick_time(0) for t in ticks)


@pytest.mark.parametrize("kind", ["coinbase", "kraken"])
def test_refused_subscription_is_fatal(kind: str) -> None:
    with FakeVenue(kind, PRICES) as venue, pytest.raises(VenueError):
        _stream(venue, 1, symbol="NOPE-XYZ")
    assert venue.connections == 1  # not retried: repeating a bad subscription cannot help


def test_unreachable_venue_backs_off_until_stopped() -> None:
    stop = threading.Event()
    threading.Timer(0.6, stop.set).start()
    stats = asyncio.run(
        run_live(
            adapter("coinbase"),
            ["BTC-USD"],
            on_tick=lambda t: None,
            on_bad=lambda b: None,
            stop=stop,
            url="ws://127.0.0.1:9/",
            backoff=Backoff(base=0.05, cap=0.1),
        )
    )
    assert stats.connects == 0 and stats.drops >= 3
