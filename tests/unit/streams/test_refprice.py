"""Pins streams.refprice: median of fresh venues, staleness in event time, venue events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cpwatch.records import PriceTick
from streams.refprice import ReferencePrice

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def tick(venue: str, price: float, sec: float, symbol: str = "BTC-USD") -> PriceTick:
    return PriceTick(venue=venue, symbol=symbol, price=price, ts=T0 + timedelta(seconds=sec))


def ref(**kw: float) -> ReferencePrice:
    return ReferencePrice(
        staleness=timedelta(seconds=kw.get("stale", 60)), divergence_pct=kw.get("div", 5)
    )


def test_single_venue_is_its_price() -> None:
    r = ref()
    assert r.update(tick("a", 100, 0)) == (100, [])
    assert r.update(tick("a", 101, 1)) == (101, [])


def test_median_of_latest_prices() -> None:
    r = ref()
    r.update(tick("a", 100, 0))
    assert r.update(tick("b", 102, 1))[0] == 101  # even count: mean of the middle two
    assert r.update(tick("c", 103, 2))[0] == 102
    assert r.update(tick("a", 104, 3))[0] == 103  # a's latest replaces its old price
    assert r.price("BTC-USD") == 103 and r.as_of("BTC-USD") == T0 + timedelta(seconds=3)


def test_stale_venue_excluded_and_reported_once_then_recovers() -> None:
    r = ref(stale=60)
    r.update(tick("a", 100, 0))
    r.update(tick("b", 100.5, 0))
    price, events = r.update(tick("a", 101, 61))  # b's last tick is 61 s old
    assert price == 101
    assert [(e.kind, e.venue, e.last_ts) for e in events] == [("stale", "b", T0)]
    assert r.update(tick("a", 102, 62)) == (102, [])  # not reported again
    price, events = r.update(tick("b", 102, 63))
    assert price == 102 and [(e.kind, e.venue) for e in events] == [("recovered", "b")]


def test_clock_is_newest_tick_of_any_venue() -> None:
    r = ref(stale=10)
    r.update(tick("a", 100, 100))
    price, events = r.update(tick("b", 200, 0))  # b's first tick is already 100 s behind the clock
    assert price == 100 and [(e.kind, e.venue) for e in events] == [("stale", "b")]
    assert r.update(tick("a", 300, 5, symbol="ETH-USD"))[0] == 300  # symbols are independent


def test_diverging_venue_reported_with_deviation() -> None:
    r = ref(div=2)
    r.update(tick("a", 100, 0))
    r.update(tick("b", 100, 1))
    price, events = r.update(tick("c", 110, 2))
    assert price == 100
    (e,) = events
    assert (e.kind, e.venue, e.reference) == ("diverging", "c", 100)
    assert e.deviation_pct == pytest.approx(10)
    assert json.loads(json.dumps(e.to_dict()))["kind"] == "diverging"


def test_late_tick_of_a_venue_is_dropped() -> None:
    r = ref()
    r.update(tick("a", 100, 10))
    assert r.update(tick("a", 50, 5)) == (None, [])
    assert r.dropped == 1 and r.price("BTC-USD") == 100
    assert r.update(tick("b", 102, 5))[0] == 101  # another venue may lag the clock


def test_state_roundtrip() -> None:
    r = ref()
    r.update(tick("a", 100, 0))
    r.update(tick("b", 120, 1))
    state = json.loads(json.dumps(r.to_dict()))
    s = ReferencePrice.from_dict(state, staleness=timedelta(seconds=60), divergence_pct=5)
    assert s.update(tick("c", 110, 2)) == r.update(tick("c", 110, 2))
    assert s.to_dict() == r.to_dict()


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        ReferencePrice(staleness=timedelta(0))
    with pytest.raises(ValueError):
        ReferencePrice(divergence_pct=0)
