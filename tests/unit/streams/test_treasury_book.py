"""Pins streams.treasury: holdings joined in event time, and what a late holding may do."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cpwatch.records import HoldingUpdate
from streams.backtest import PriceRow, run_backtest
from streams.holdings import HoldingsTimeline
from streams.rules import DrawdownRule, LevelRule, PctMoveRule, RuleEngine
from streams.treasury import TreasuryBook

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DD = DrawdownRule(id="dd-30", holder="*", type="drawdown", pct=30, direction="down")
MOVE = PctMoveRule(id="move-7d", holder="*", type="pct_move", window="7d", pct=15)
LEVEL = LevelRule(id="lvl-1b", holder="*", type="level", threshold_usd=1e9)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def upd(holder: str, btc: float, as_of_day: float, cost: float | None = None) -> HoldingUpdate:
    return HoldingUpdate(
        holder=holder, kind="company", btc=btc, as_of=day(as_of_day), avg_cost_usd=cost
    )


def prices(closes: list[float], start: int = 0) -> list[PriceRow]:
    return [PriceRow(i + 2, day(start + i), c) for i, c in enumerate(closes)]


def test_rows_before_prices_join_in_event_time() -> None:
    # 10,000 BTC from day 0, 2,000 from day 5: the drop on day 5 is a real sale, so a
    # backtest with every row known first reports it at day 5.
    book = TreasuryBook(RuleEngine([DD]))
    applied = book.apply_holdings([upd("T", 10_000, 0), upd("T", 2_000, 5)])
    assert applied.late == [] and len(applied.changed) == 2
    alerts = [a for i in range(10) for a in book.on_price(day(i), 50_000)]
    assert [(a.rule, a.ts, a.btc) for a in alerts] == [("dd-30", day(5), 2_000)]


def test_late_row_rebases_instead_of_firing_a_drop_at_the_wrong_date() -> None:
    # The Tesla case: the day-0 row is valued until day 9, then the day-5 row (a sale) arrives.
    # Applied as a fresh value it would look like an 80% loss on day 10; it must not.
    book = TreasuryBook(RuleEngine([DD, MOVE, LEVEL]))
    book.apply_holdings([upd("T", 42_000, 0)])
    early = [a for i in range(10) for a in book.on_price(day(i), 50_000)]
    assert early == []
    applied = book.apply_holdings([upd("T", 9_720, 5)])
    assert applied.late == [upd("T", 9_720, 5)] and applied.rebased == ["T"]
    assert book.late_total == 1
    later = [a for i in range(10, 20) for a in book.on_price(day(i), 50_000)]
    assert later == []  # same price afterwards: nothing moved, nothing fires
    # The rules start afresh from day 10's value: a real 30% fall from there still fires.
    fall = book.on_price(day(20), 34_000)
    assert [(a.rule, a.direction) for a in fall] == [("dd-30", "down"), ("move-7d", "down")]


def test_late_row_that_only_fills_history_changes_nothing() -> None:
    book = TreasuryBook(RuleEngine([DD]))
    book.apply_holdings([upd("T", 10_000, 0), upd("T", 9_000, 3)])
    for i in range(6):
        book.on_price(day(i), 50_000)
    state = json.dumps(book.engine.to_dict(), sort_keys=True)
    applied = book.apply_holdings([upd("T", 1, 1)])  # older than the row in force
    assert applied.late == [upd("T", 1, 1)] and applied.rebased == []
    assert json.dumps(book.engine.to_dict(), sort_keys=True) == state


def test_a_row_for_a_future_date_is_not_late() -> None:
    book = TreasuryBook(RuleEngine([DD]))
    book.apply_holdings([upd("T", 10_000, 0)])
    book.on_price(day(3), 50_000)
    applied = book.apply_holdings([upd("T", 1_000, 4)])
    assert applied.late == [] and applied.changed == [upd("T", 1_000, 4)]
    assert [a.rule for a in book.on_price(day(4), 50_000)] == ["dd-30"]  # a real sale


def test_replayed_rows_are_no_ops_and_equal_as_of_resolves_to_the_last() -> None:
    book = TreasuryBook(RuleEngine([DD]))
    first, correction = upd("T", 10_000, 0), upd("T", 11_000, 0)
    book.apply_holdings([first, correction])
    book.on_price(day(2), 50_000)
    assert book.timeline.at("T", day(2)) == correction
    # A restart re-reads the whole topic, both rows: collapsed to the last, nothing changes.
    again = book.apply_holdings([first, correction])
    assert again.changed == [] and again.late == [] and again.rebased == []


def test_state_round_trip_keeps_rows_equal_to_the_topic_rows() -> None:
    rows = [upd("T", 10_000.5, 0, cost=30_000.0), upd("U", 3, 2)]
    saved = json.loads(json.dumps(HoldingsTimeline(rows).to_dict()))
    book = TreasuryBook(RuleEngine([DD]), HoldingsTimeline.from_dict(saved))
    book.on_price(day(3), 50_000)
    reread = [HoldingUpdate.parse(r.to_bytes()) for r in rows]
    assert book.apply_holdings(reread).changed == []


def test_history_is_bounded_per_holder() -> None:
    tl = HoldingsTimeline(limit=3)
    for d in range(5):
        tl.add(upd("T", d + 1, d))
    assert [h.btc for h in tl.history("T")] == [3, 4, 5]
    assert tl.add(upd("T", 99, 0)) is False  # older than every kept row: nothing to change
    assert tl.add(upd("T", 6, 10)) is True and [h.btc for h in tl.history("T")] == [4, 5, 6]


def test_backtest_applies_late_rows_like_the_book() -> None:
    rows = prices([50_000] * 10 + [50_000] * 10 + [34_000])
    holdings = [upd("T", 42_000, 0), upd("T", 9_720, 5)]
    on_time = [a.ts for a in run_backtest(rows, holdings, RuleEngine([DD]))]
    assert on_time == [day(5)]  # the sale, at its date
    # Arriving after 10 prices (days 0..9), with only the older row evaluated before: one
    # batch, both rows late, the holder's first evaluation is day 10: the fall at day 20 only.
    late = [a.ts for a in run_backtest(rows, holdings, RuleEngine([DD]), holdings_after=10)]
    assert late == [day(20)]
