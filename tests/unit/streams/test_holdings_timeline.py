"""Pins streams.holdings: the holding in force at t is the latest as_of <= t."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cpwatch.records import HoldingUpdate
from streams.holdings import HoldingsTimeline, value_usd

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def upd(holder: str, btc: float, day: int, cost: float | None = None) -> HoldingUpdate:
    return HoldingUpdate(
        holder=holder, kind="state", btc=btc, as_of=T0 + timedelta(days=day), avg_cost_usd=cost
    )


def at(tl: HoldingsTimeline, holder: str, day: float) -> float | None:
    h = tl.at(holder, T0 + timedelta(days=day))
    return h.btc if h else None


def test_latest_as_of_at_or_before_t() -> None:
    tl = HoldingsTimeline([upd("A", 20, 10), upd("A", 10, 0), upd("A", 30, 20)])  # any insert order
    assert at(tl, "A", -1) is None  # before the first update: nothing
    assert at(tl, "A", 0) == 10  # as_of itself is in force
    assert at(tl, "A", 9.99) == 10
    assert at(tl, "A", 10) == 20
    assert at(tl, "A", 1000) == 30
    assert at(tl, "B", 5) is None


def test_same_as_of_replaces_and_in_force_sorted() -> None:
    tl = HoldingsTimeline([upd("B", 1, 0), upd("A", 2, 0), upd("A", 3, 0), upd("C", 4, 5)])
    assert len(tl) == 3
    assert [(h.holder, h.btc) for h in tl.in_force(T0)] == [("A", 3), ("B", 1)]
    assert tl.holders == ["A", "B", "C"]


def test_value_and_roundtrip() -> None:
    tl = HoldingsTimeline([upd("A", 2.5, 0, cost=100.0), upd("A", 3, 4)])
    h = tl.at("A", T0)
    assert h is not None and value_usd(h, 40_000) == 100_000 and h.avg_cost_usd == 100
    back = HoldingsTimeline.from_dict(json.loads(json.dumps(tl.to_dict())))
    assert back.to_dict() == tl.to_dict() and back.history("A") == tl.history("A")


@given(
    st.lists(st.tuples(st.integers(0, 50), st.floats(0, 1e6)), min_size=1, max_size=30),
    st.integers(-5, 60),
)
def test_matches_brute_force(rows: list[tuple[int, float]], day: int) -> None:
    tl = HoldingsTimeline(upd("A", btc, d) for d, btc in rows)
    last_by_day = dict(rows)  # later rows win on the same day
    eligible = [d for d in last_by_day if d <= day]
    assert at(tl, "A", day) == (last_by_day[max(eligible)] if eligible else None)
