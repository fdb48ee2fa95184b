"""The columnar engine against the scalar reference, on random streams.

The scalar path is the specification: ``TreasuryBook.on_price`` per price (the backtest), and
``TreasuryProcessor.process`` (the stream: repeat check, reference price, then ``on_price`` at
the symbol's clock, tick by tick). The
columnar path gets the same input cut into random batches, with holdings arriving between
them. Required: the same alerts (every field, same order), venue events, counters and state;
for ``TreasuryProcessor(engine="columnar")`` against ``engine="scalar"``, the same
``BatchOutput`` and the same table record, across restarts from that record.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpwatch.records import HoldingUpdate, PriceTick
from streams.columnar import ColumnarBook, ColumnarEngine, to_us
from streams.columnar_refprice import ColumnarReferencePrice
from streams.columnar_rules import running_max_before
from streams.columnar_stream import process_ticks
from streams.columnar_ticks import decode_ticks
from streams.rules import RuleEngine, parse_rules
from streams.treasury import TreasuryBook
from streams.treasury_processor import (
    ASSET_SYMBOL,
    BatchOutput,
    SymbolState,
    TreasuryProcessor,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOLDERS = ("alpha", "beta", "gamma")
CHECK = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# steps in microseconds: 0 gives equal timestamps, negatives give out-of-order rows
steps = st.sampled_from([0, 0, 1, 1_000_000, 30_000_000, 60_000_000, 3_600_000_000, -5_000_000])
prices = st.one_of(
    st.sampled_from([50.0, 90.0, 100.0, 110.0, 150.0, 200.0]),
    st.floats(min_value=10, max_value=300, allow_nan=False),
)
directions = st.sampled_from(["up", "down", "both"])


@st.composite
def rule_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["level", "below_cost", "pct_move", "drawdown"]))
        r: dict[str, Any] = {
            "id": f"r{i}",
            "holder": draw(st.sampled_from(["*", "*", *HOLDERS])),
            "type": kind,
            "direction": draw(directions),
        }
        if kind == "level":
            r["threshold_usd"] = draw(st.sampled_from([100.0, 500.0, 1000.0, 1500.0]))
        if kind in ("level", "below_cost"):
            r["hysteresis"] = draw(st.sampled_from([0.0, 0.0, 0.1, 0.1000001, 0.5]))
        if kind == "pct_move":
            r["window"] = draw(st.sampled_from(["1s", "60s", "30m", "1h"]))
            r["pct"] = draw(st.sampled_from([1.0, 10.0, 50.0]))
        if kind == "drawdown":
            r["pct"] = draw(st.sampled_from([10.0, 25.0, 50.0, 1e-15]))  # 1e-15: floor == peak
        out.append(r)
    return out


@st.composite
def holdings(draw: st.DrawFn, span_us: int) -> list[HoldingUpdate]:
    out = []
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(-span_us // 4, span_us))
        out.append(
            HoldingUpdate(
                holder=draw(st.sampled_from(HOLDERS)),
                kind="company",
                btc=draw(st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0])),
                as_of=T0 + timedelta(microseconds=at),
                avg_cost_usd=draw(st.sampled_from([None, 100.0, 150.0])),
            )
        )
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[tuple[str, Any]]]:
    """Rules and a list of operations: ("hold", updates) or ("prices", [(us, price), ...])."""
    rules = draw(rule_sets())
    n = draw(st.integers(1, 60))
    us, series = 0, []
    for _ in range(n):
        us += draw(steps)
        series.append((us, draw(prices)))
    span = max(abs(u) for u, _ in series) + 1
    ops: list[tuple[str, Any]] = [("hold", draw(holdings(span)))]
    cuts = sorted(set(draw(st.lists(st.integers(1, n), max_size=4))))
    start = 0
    for cut in [*cuts, n]:
        if cut > start:
            ops.append(("prices", series[start:cut]))
            start = cut
        ops.append(("hold", draw(holdings(span))))  # late or future rows between batches
    return rules, ops


def splits(data: st.DataObject, n: int) -> list[int]:
    """Random batch boundaries over n items (empty batches included)."""
    return sorted(set(data.draw(st.lists(st.integers(0, n), max_size=5))) | {0, n})


def state(book: TreasuryBook) -> dict[str, Any]:
    return {
        "engine": book.engine.to_dict(),
        "timeline": book.timeline.to_dict(),
        "late": book.late_total,
        "evaluations": book.engine.evaluations,
    }


@CHECK
@given(scenario=scenarios(), data=st.data())
def test_book_matches_scalar_on_any_batch_split(
    scenario: tuple[list[dict[str, Any]], list[tuple[str, Any]]], data: st.DataObject
) -> None:
    rules = parse_rules(json.dumps({"rules": scenario[0]}))
    scalar, columnar = TreasuryBook(RuleEngine(rules)), ColumnarBook(ColumnarEngine(rules))
    want, got = [], []
    for kind, arg in scenario[1]:
        if data.draw(st.booleans()):  # a restart: the columnar state restored from its dict
            late = columnar.late_total
            restored = ColumnarEngine.from_dict(rules, columnar.engine.to_dict())
            assert isinstance(restored, ColumnarEngine)
            restored.evaluations = columnar.engine.evaluations
            columnar = ColumnarBook(restored, columnar.timeline)
            columnar.late_total = late
        if kind == "hold":
            a, b = scalar.apply_holdings(arg), columnar.apply_holdings(arg)
            assert a == b
            continue
        for us, price in arg:
            want += scalar.on_price(T0 + timedelta(microseconds=us), price)
        t_us = np.array([to_us(T0) + us for us, _ in arg], np.int64)
        px = np.array([p for _, p in arg])
        cut = splits(data, len(arg))
        for lo, hi in zip(cut, cut[1:], strict=False):
            got += columnar.on_prices(t_us[lo:hi], px[lo:hi])
    assert got == want
    assert [a.to_dict() for a in got] == [a.to_dict() for a in want]
    assert state(columnar) == state(scalar)
    # the state carries over both ways: a scalar engine restored from it agrees
    assert RuleEngine.from_dict(rules, columnar.engine.to_dict()).to_dict() == (
        scalar.engine.to_dict()
    )


@st.composite
def tick_streams(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    """(symbol, line) in arrival order; bad lines are filed under BTC-USD."""
    venues = draw(st.lists(st.sampled_from(["bin", "cb", "kr", "bs"]), min_size=1, max_size=4))
    lines, us = [], 0
    for _ in range(draw(st.integers(1, 60))):
        us += draw(steps)
        symbol = draw(st.sampled_from(["BTC-USD", "BTC-USD", "ETH-USD"]))
        tick = PriceTick(
            venue=draw(st.sampled_from(venues)),
            symbol=symbol,
            price=draw(st.one_of(prices, st.sampled_from([100.0, 102.0, 99.5, 100.5, 103.0]))),
            ts=T0 + timedelta(microseconds=us),
        )
        lines.append((symbol, tick.to_bytes()))
        if draw(st.integers(0, 8)) == 0:  # a redelivery: TreasuryProcessor skips it
            lines.append(lines[-1])
        if draw(st.integers(0, 20)) == 0:
            bad = draw(st.sampled_from([b"{", b'{"venue":"x"}', b"null", b"[1,2]"]))
            lines.append(("BTC-USD", bad))
    return lines


@CHECK
@given(lines=tick_streams(), rules=rule_sets(), data=st.data())
def test_ticks_match_treasury_processor(
    lines: list[tuple[str, bytes]], rules: list[dict[str, Any]], data: st.DataObject
) -> None:
    """The stream's reference is ``TreasuryProcessor.process`` on one symbol's ticks."""
    parsed = parse_rules(json.dumps({"rules": rules}))
    held = data.draw(holdings(3_600_000_000))
    staleness = timedelta(seconds=data.draw(st.sampled_from([1, 60, 120])))
    div = data.draw(st.sampled_from([0.5, 2.0]))
    proc = TreasuryProcessor(parsed, staleness, div)
    for symbol in sorted({s for s, _ in lines}):
        mine = [body for s, body in lines if s == symbol]
        want_state = proc.new_state(symbol)
        want = proc.process(want_state, symbol, mine, holdings=held)
        ref = ColumnarReferencePrice(staleness, div)
        book = ColumnarBook(ColumnarEngine(parsed), symbol=symbol)
        if symbol == ASSET_SYMBOL:  # the processor applies holdings before the first tick
            book.apply_holdings(held)
        alerts, events, bad = [], [], []
        cut = splits(data, len(mine))
        for lo, hi in zip(cut, cut[1:], strict=False):
            cols = decode_ticks(mine[lo:hi])
            bad += [mine[lo + b.index] for b in cols.bad]
            res = process_ticks(ref, {symbol: book}, cols)
            alerts += res.alerts
            events += [e for _, e in res.events]
        assert bad == [body for body, _ in want.rejected]
        assert events == want.venue_events
        assert alerts == want.alerts
        assert ref.to_dict() == want_state.ref.to_dict()
        assert state(book) == state(want_state.book)


def outputs(out: BatchOutput) -> dict[str, Any]:
    """Everything the agent sends, logs or counts, in its order (valuations in send order)."""
    return {
        "alerts": [a.to_dict() for a in out.alerts],
        "valuations": list(out.valuations.items()),
        "rejected": out.rejected,
        "venue_events": [e.to_dict() for e in out.venue_events],
        "late": out.late,
        "late_seen_until": out.late_seen_until,
    }


@CHECK
@given(lines=tick_streams(), rules=rule_sets(), data=st.data())
def test_columnar_processor_matches_scalar_processor(
    lines: list[tuple[str, bytes]], rules: list[dict[str, Any]], data: st.DataObject
) -> None:
    """The agent's loop with both engines: batches cut anywhere, one message per symbol, the
    holdings table growing between batches, restarts from the saved record (each engine
    restored from the other's, so the records are interchangeable)."""
    parsed = parse_rules(json.dumps({"rules": rules}))
    staleness = timedelta(seconds=data.draw(st.sampled_from([1, 60, 120])))
    div = data.draw(st.sampled_from([0.5, 2.0]))
    columnar = TreasuryProcessor(parsed, staleness, div, engine="columnar")
    scalar = TreasuryProcessor(parsed, staleness, div, engine="scalar")
    if data.draw(st.integers(0, 4)) == 0:  # another symbol's tick in a batch: rejected
        eth = PriceTick(venue="bin", symbol="ETH-USD", price=100.0, ts=T0).to_bytes()
        lines = [*lines, (ASSET_SYMBOL, eth)]
    span = 3_600_000_000 * 8
    table: list[HoldingUpdate] = data.draw(holdings(span))
    states: dict[str, tuple[SymbolState, SymbolState]] = {}
    cut = splits(data, len(lines))
    for lo, hi in zip(cut, cut[1:], strict=False):
        if data.draw(st.booleans()):  # a restart: every state from the other engine's record
            for symbol, (c, s) in list(states.items()):
                rec_c = json.loads(json.dumps(c.to_record()))
                rec_s = json.loads(json.dumps(s.to_record()))
                assert rec_c == rec_s
                states[symbol] = (
                    columnar.from_record(symbol, rec_s),
                    scalar.from_record(symbol, rec_c),
                )
        per_symbol: dict[str, list[bytes]] = {}
        for symbol, body in lines[lo:hi]:
            per_symbol.setdefault(symbol, []).append(body)
        got, want = BatchOutput(), BatchOutput()  # one per agent batch, shared by its symbols
        for symbol, bodies in per_symbol.items():
            if symbol not in states:
                states[symbol] = (columnar.new_state(symbol), scalar.new_state(symbol))
            c, s = states[symbol]
            columnar.process(c, symbol, bodies, table, got)
            scalar.process(s, symbol, bodies, table, want)
            assert c.to_record() == s.to_record()
            assert c.synced == s.synced
        assert outputs(got) == outputs(want)
        table = table + data.draw(holdings(span))  # rows that come while the batch ran


def test_bad_rows_name_index_and_field() -> None:
    good = PriceTick(venue="v", symbol="BTC-USD", price=1.0, ts=T0).to_bytes()
    lines = [
        good,
        b'{"venue":"v","symbol":"BTC-USD","price":-1.0,"ts":"2024-01-01T00:00:00Z"}',
        b"not json",
        b'{"venue":"v","symbol":"BTC-USD","price":1.0,"ts":"9999-01-01T00:00:00Z"}',
        b'{"venue":"v","symbol":"BTC-USD","price":2,"ts":"2024-01-01T00:00:00+01:00"}',
    ]
    cols = decode_ticks(lines)
    assert cols.row.tolist() == [0, 4]  # the int price and +01:00 offset are valid, slow path
    assert cols.t_us.tolist() == [to_us(T0), to_us(T0 - timedelta(hours=1))]
    assert [(b.index, b.field) for b in cols.bad] == [(1, "price"), (2, "<message>"), (3, "ts")]
    assert all(b.reason for b in cols.bad)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.0, 1.0, 2.0, 5.0, 1e-320, 3.0]), min_size=1, max_size=700),
    start=st.sampled_from([-np.inf, 0.0, 2.0]),
)
def test_running_max_matches_numpy(values: list[float], start: float) -> None:
    v = np.array(values)
    want = np.maximum.accumulate(np.concatenate(([start], v[:-1])))
    assert running_max_before(v, start).tolist() == want.tolist()


def test_drawdown_where_floor_equals_peak_walks_the_state() -> None:
    """pct 1e-15: the floor rounds to the peak, so a value at the peak both enters and leaves;
    the scalar alternates, and so must the columnar engine."""
    rules = parse_rules(
        json.dumps(
            {
                "rules": [
                    {"id": "dd", "holder": "*", "type": "drawdown", "pct": 1e-15},
                    {"id": "lvl", "holder": "*", "type": "level", "threshold_usd": 100.0},
                ]
            }
        )
    )
    held = [HoldingUpdate(holder="a", kind="state", btc=1.0, as_of=T0)]
    series = [100.0, 100.0, 100.0, 100.0, 120.0, 120.0, 90.0, 120.0]
    scalar, columnar = TreasuryBook(RuleEngine(rules)), ColumnarBook(ColumnarEngine(rules))
    scalar.apply_holdings(held)
    columnar.apply_holdings(held)
    want = [a for i, p in enumerate(series) for a in scalar.on_price(T0 + timedelta(seconds=i), p)]
    t_us = to_us(T0) + np.arange(len(series), dtype=np.int64) * 1_000_000
    got = columnar.on_prices(t_us, np.array(series))
    assert len(want) >= 6 and got == want
    assert columnar.engine.to_dict() == scalar.engine.to_dict()
