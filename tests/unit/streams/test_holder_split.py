"""The treasury split in two stages against the one-stage processor, on random streams.

The stream runs a symbol stage (``TreasuryProcessor(holders_apart=True)``: reference prices, and
the asset's price series) and holder slots (``HolderProcessor``: holdings and rules of the holders
that hash to the slot). Together they must give what ``TreasuryProcessor`` gives alone for the
same batches: the same alerts (each holder's in the same order), valuations, late holdings and
venue events, across restarts from the saved records, with series delivered twice (the symbol
stage re-sends after a crash) and with an old one-stage record handed over mid-stream.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from cpwatch.internal_topics import PriceSeriesFrame, decode_holder_message
from cpwatch.records import HoldingUpdate
from streams.columnar import from_us
from streams.holder_processor import HolderProcessor, HolderState, holder_slot
from streams.rules import parse_rules
from streams.treasury_processor import ASSET_SYMBOL, BatchOutput, PriceSeries, TreasuryProcessor
from tests.unit.test_columnar_equivalence import (
    CHECK,
    HOLDERS,
    holdings,
    rule_sets,
    splits,
    tick_streams,
)


def by_holder(out: BatchOutput) -> dict[str, Any]:
    """What the agents send or log, in an order the split keeps: per holder."""
    alerts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in out.alerts:
        alerts[a.holder].append(a.to_dict())
    return {
        "alerts": dict(alerts),
        "valuations": dict(out.valuations),
        "rejected": out.rejected,
        "venue_events": [e.to_dict() for e in out.venue_events],
        "late": sorted((u.to_dict()["holder"], str(u.as_of), r) for u, r in out.late),
        "late_seen_until": out.late_seen_until,
    }


def over_the_wire(series: PriceSeries) -> PriceSeries:
    """A series as the holder agent reads it: encoded to a frame and decoded."""
    frame = PriceSeriesFrame(
        series.symbol,
        series.first,
        series.t_us.tobytes(),
        series.price.tobytes(),
        series.end_price,
        None if series.end_as_of is None else int(series.end_as_of.timestamp() * 1e6),
    )
    got = decode_holder_message(frame.encode())
    assert isinstance(got, PriceSeriesFrame)
    return PriceSeries(
        got.symbol,
        got.seq,
        np.frombuffer(got.t_us, np.int64),
        np.frombuffer(got.price, np.float64),
        got.end_price,
        None if got.end_as_of_us is None else from_us(got.end_as_of_us),
    )


@CHECK
@given(
    lines=tick_streams(),
    rules=rule_sets(),
    slots=st.sampled_from([1, 2, 3, 8]),
    engine=st.sampled_from(["columnar", "scalar"]),
    data=st.data(),
)
def test_symbol_stage_and_holder_slots_equal_one_stage(
    lines: list[tuple[str, bytes]],
    rules: list[dict[str, Any]],
    slots: int,
    engine: str,
    data: st.DataObject,
) -> None:
    parsed = parse_rules(json.dumps({"rules": rules}))
    staleness = timedelta(seconds=data.draw(st.sampled_from([1, 60, 120])))
    div = data.draw(st.sampled_from([0.5, 2.0]))
    one = TreasuryProcessor(parsed, staleness, div, engine=engine)  # type: ignore[arg-type]
    sym = TreasuryProcessor(parsed, staleness, div, engine=engine, holders_apart=True)  # type: ignore[arg-type]
    hold = HolderProcessor(parsed, slots, engine=engine)  # type: ignore[arg-type]
    span = 3_600_000_000 * 8
    table: list[HoldingUpdate] = data.draw(holdings(span))
    whole: dict[str, Any] = {}
    split: dict[str, Any] = {}
    slot_states: list[HolderState] = [hold.new_state(i) for i in range(slots)]
    # an old one-stage record handed over after this many batches (None: split from the start)
    handover_at = data.draw(st.one_of(st.none(), st.integers(0, 3)))
    cut = splits(data, len(lines))
    for k, (lo, hi) in enumerate(zip(cut, cut[1:], strict=False)):
        if k == handover_at:  # the upgrade: records one stage wrote (version 1) are read
            for symbol, w in whole.items():
                old = {**json.loads(json.dumps(w.to_record())), "v": 1}
                del old["published"]
                split[symbol] = sym.from_record(symbol, old)
                if symbol == ASSET_SYMBOL:
                    handover = split[symbol].handover  # None: nothing to hand over
                    for state in slot_states:
                        assert handover is None or hold.adopt(state, handover)
        per_symbol: dict[str, list[bytes]] = {}
        for symbol, body in lines[lo:hi]:
            per_symbol.setdefault(symbol, []).append(body)
        want, got = BatchOutput(), BatchOutput()
        for symbol, bodies in per_symbol.items():
            w = whole.setdefault(symbol, one.new_state(symbol))
            one.process(w, symbol, bodies, table, want)
        if handover_at is not None and k < handover_at:  # the split is not running yet
            table = table + data.draw(holdings(span))
            continue
        for symbol, bodies in per_symbol.items():
            s = split.setdefault(symbol, sym.new_state(symbol))
            sym.process(s, symbol, bodies, (), got)
        for series in got.prices:
            wire = over_the_wire(series)
            for state in slot_states:
                hold.process(state, wire, table, got)
                if data.draw(st.integers(0, 5)) == 0:  # delivered again: changes nothing
                    again = BatchOutput()
                    hold.process(state, wire, table, again)
                    assert not again.alerts and not again.valuations and not again.late
        assert by_holder(got) == by_holder(want)
        if data.draw(st.booleans()):  # a restart: every state from its saved record
            split = {
                s: sym.from_record(s, json.loads(json.dumps(v.to_record())))
                for s, v in split.items()
            }
            slot_states = [
                hold.from_record(i, json.loads(json.dumps(v.to_record())))
                for i, v in enumerate(slot_states)
            ]
        table = table + data.draw(holdings(span))  # rows that come while the batch ran
    for state in slot_states:  # each slot keeps its own holders only
        assert all(holder_slot(h, slots) == state.slot for h in state.book.timeline.holders)


def test_holders_spread_over_slots() -> None:
    assert {holder_slot(h, 8) for h in HOLDERS} == {holder_slot(h, 8) for h in HOLDERS}
    assert all(0 <= holder_slot(h, 3) < 3 for h in HOLDERS)
    assert holder_slot("MicroStrategy", 8) == holder_slot("MicroStrategy", 8)
    assert ASSET_SYMBOL == "BTC-USD"


def _series(first: int, points: list[tuple[int, float]]) -> PriceSeries:
    t_us = np.array([1_704_067_200_000_000 + s * 1_000_000 for s, _ in points], np.int64)
    price = np.array([p for _, p in points], np.float64)
    end = (float(price[-1]), from_us(int(t_us[-1]))) if points else (None, None)
    return PriceSeries(ASSET_SYMBOL, first, t_us, price, *end)


ACME = HoldingUpdate(holder="acme", kind="company", btc=2.0, as_of=from_us(1_704_000_000_000_000))


def test_a_series_starting_at_the_last_price_values_nothing_new() -> None:
    hold = HolderProcessor([], slots=1)
    st_ = hold.new_state(0)
    first = BatchOutput()
    hold.process(st_, _series(0, [(0, 100.0), (61, 101.0)]), [ACME], first)
    assert [d["price"] for d in first.valuations.values()] == [100.0, 101.0]
    second = BatchOutput()
    hold.process(st_, _series(2, [(62, 101.0), (125, 101.0)]), [ACME], second)
    assert second.valuations == {}  # the price did not change: no document, as in one stage
    third = BatchOutput()
    hold.process(st_, _series(4, [(126, 99.0)]), [ACME], third)
    assert [d["value_usd"] for d in third.valuations.values()] == [198.0]


def test_a_series_sent_again_leaves_the_slot_where_it_was() -> None:
    hold = HolderProcessor([], slots=1)
    st_ = hold.new_state(0)
    a, b = _series(0, [(0, 100.0), (1, 101.0)]), _series(2, [(2, 102.0)])
    hold.process(st_, a, [ACME])
    hold.process(st_, b, [ACME])
    out = BatchOutput()
    assert hold.process(st_, a, [ACME], out) is None  # a crash of the symbol stage resends
    assert (st_.seq, st_.price, out.valuations) == (3, 102.0, {})
    gap = hold.process(st_, _series(5, [(5, 103.0)]), [ACME])
    assert gap is not None and (gap.expected, gap.got) == (3, 5) and st_.seq == 6


def test_a_slot_adopts_its_holders_once() -> None:
    hold = HolderProcessor([], slots=8)
    mine = "acme"
    slot = holder_slot(mine, 8)
    other = next(h for h in (*HOLDERS, "x", "y", "z") if holder_slot(h, 8) != slot)
    rows = {h: [ACME.model_copy(update={"holder": h}).to_dict()] for h in (mine, other)}
    handover = {"holdings": {"holders": rows}, "engine": {}, "ref": [100.0, 1_704_067_200_000_000]}
    st_ = hold.new_state(slot)
    assert hold.adopt(st_, handover)
    assert st_.book.timeline.holders == [mine]  # the other holder is another slot's
    assert st_.price == 100.0
    hold.process(st_, _series(0, [(0, 90.0)]), [])
    assert not hold.adopt(st_, handover)  # prices applied: the slot keeps its own state
