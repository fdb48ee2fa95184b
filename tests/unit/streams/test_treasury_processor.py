"""The treasury processor without engines: batches, crash points and replays.

A crash can hit between sending a batch's outputs and saving its state, so the stream
restarts from the last saved record and sees the batch again. These tests drive that with
plain lists: the outputs must equal the backtest's, and a replayed batch must change nothing.
Every test runs on both engines (columnar and the scalar reference).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cpwatch.exceptions import RecordError
from cpwatch.internal_topics import VALUATION_INPUT, TickBatch, internal_topic
from cpwatch.records import HoldingUpdate, PriceTick
from cpwatch.settings import Settings
from cpwatch.state_versions import StateVersionError
from streams.backtest import PriceRow, run_backtest
from streams.rules import DrawdownRule, LevelRule, PctMoveRule, RuleEngine
from streams.treasury_processor import ASSET_SYMBOL, BatchOutput, Engine, TreasuryProcessor

T0 = datetime(2024, 1, 1, tzinfo=UTC)
RULES = (
    DrawdownRule(id="dd-20", holder="*", type="drawdown", pct=20, direction="down"),
    PctMoveRule(id="move-3d", holder="*", type="pct_move", window="3d", pct=10),
    LevelRule(id="lvl-3b", holder="*", type="level", threshold_usd=3e9),
)
CLOSES = [60_000, 64_000, 71_000, 52_000, 49_000, 58_000, 66_000, 75_000, 51_000, 80_000]
HOLDINGS = [
    HoldingUpdate(holder="acme", kind="company", btc=40_000, as_of=T0 - timedelta(days=30)),
    HoldingUpdate(holder="sv", kind="state", btc=6_000, as_of=T0 + timedelta(days=4)),
]


@pytest.fixture(params=["columnar", "scalar"])
def engine(request: pytest.FixtureRequest) -> Engine:
    name: Engine = request.param
    return name


def processor(engine: Engine) -> TreasuryProcessor:
    # Staleness longer than the series: one venue's last tick is the reference price.
    return TreasuryProcessor(RULES, timedelta(days=30), 2.0, engine=engine)


def tick(i: int, close: float, venue: str = "v1") -> bytes:
    ts = T0 + timedelta(days=i)
    return PriceTick(venue=venue, symbol=ASSET_SYMBOL, price=close, ts=ts, seq=i).to_bytes()


def ticks() -> list[bytes]:
    return [tick(i, c) for i, c in enumerate(CLOSES)]


def alert_keys(out: BatchOutput) -> list[tuple[str, str, str, str]]:
    return [(a.holder, a.rule, a.direction, a.ts.isoformat()) for a in out.alerts]


def backtest_keys() -> list[tuple[str, str, str, str]]:
    rows = [PriceRow(i + 2, T0 + timedelta(days=i), c) for i, c in enumerate(CLOSES)]
    alerts = run_backtest(rows, HOLDINGS, RuleEngine(RULES))
    return [(a.holder, a.rule, a.direction, a.ts.isoformat()) for a in alerts]


def test_one_batch_equals_the_backtest(engine: Engine) -> None:
    p = processor(engine)
    out = p.process(p.new_state(ASSET_SYMBOL), ASSET_SYMBOL, ticks(), HOLDINGS)
    assert alert_keys(out) == backtest_keys()
    assert len(out.alerts) >= 3  # the series crosses several rules: the check has teeth
    assert out.rejected == [] and out.late == []


@pytest.mark.parametrize("cut", [1, 3, 5, 8])
def test_batches_split_anywhere_give_the_same_alerts(cut: int, engine: Engine) -> None:
    p = processor(engine)
    st = p.new_state(ASSET_SYMBOL)
    first = p.process(st, ASSET_SYMBOL, ticks()[:cut], HOLDINGS)
    saved = json.loads(json.dumps(st.to_record()))  # what the changelog keeps
    restored = p.from_record(ASSET_SYMBOL, saved)
    second = p.process(restored, ASSET_SYMBOL, ticks()[cut:], HOLDINGS)
    # A restored state reapplies the holdings table (idempotent: same rows, no changes).
    assert alert_keys(first) + alert_keys(second) == backtest_keys()


@pytest.mark.parametrize("cut", [2, 4, 7])
def test_crash_before_the_save_replays_the_batch_to_the_same_outputs(
    cut: int, engine: Engine
) -> None:
    p = processor(engine)
    st = p.new_state(ASSET_SYMBOL)
    p.process(st, ASSET_SYMBOL, ticks()[:cut], HOLDINGS)
    saved = json.loads(json.dumps(st.to_record()))
    sent = p.process(st, ASSET_SYMBOL, ticks()[cut:], HOLDINGS)  # outputs sent, then crash
    again = p.process(p.from_record(ASSET_SYMBOL, saved), ASSET_SYMBOL, ticks()[cut:], HOLDINGS)
    assert alert_keys(again) == alert_keys(sent)
    assert again.valuations == sent.valuations


def test_a_replayed_batch_changes_nothing(engine: Engine) -> None:
    p = processor(engine)
    st = p.new_state(ASSET_SYMBOL)
    p.process(st, ASSET_SYMBOL, ticks(), HOLDINGS)
    before = st.to_record()
    replay = p.process(st, ASSET_SYMBOL, ticks(), HOLDINGS)
    assert replay.alerts == [] and replay.valuations == {}
    after = st.to_record()
    # Older ticks are counted as dropped (a statistic); the last one is a repeat, skipped.
    assert after["ref"].pop("dropped") == before["ref"].pop("dropped") + len(CLOSES) - 1
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)


def test_a_bad_tick_is_rejected_with_its_reason_and_the_rest_flows(engine: Engine) -> None:
    p = processor(engine)
    bad = b'{"venue": "v1", "symbol": "BTC-USD", "price": -3, "ts": "2024-01-02T00:00:00Z"}'
    body = [*ticks()[:3], bad, *ticks()[3:]]
    out = p.process(p.new_state(ASSET_SYMBOL), ASSET_SYMBOL, body, HOLDINGS)
    assert [b for b, _ in out.rejected] == [bad]
    assert "price" in out.rejected[0][1]
    assert out.rejected_at == [3]  # where it was in the call's ticks: the agent's dead letter
    assert alert_keys(out) == backtest_keys()


def test_rejected_ticks_carry_their_index_in_each_call(engine: Engine) -> None:
    """The agent runs a symbol's consecutive messages as one call and dead-letters each bad
    tick against its own message, by this index; it restarts with every call."""
    p = processor(engine)
    st, out = p.new_state(ASSET_SYMBOL), BatchOutput()
    bad = b"{not json"
    p.process(st, ASSET_SYMBOL, [bad, *ticks()[:4], bad], HOLDINGS, out)
    p.process(st, ASSET_SYMBOL, [*ticks()[4:6], bad, *ticks()[6:]], HOLDINGS, out)
    assert out.rejected_at == [0, 5, 2]
    assert [b for b, _ in out.rejected] == [bad, bad, bad]
    assert alert_keys(out) == backtest_keys()


def test_a_tick_of_another_symbol_is_rejected(engine: Engine) -> None:
    """route-ticks keys each tick by its own symbol; a batch holding another symbol's tick is
    not the treasury's to value (it would be priced as this symbol)."""
    p = processor(engine)
    eth = PriceTick(venue="v1", symbol="ETH-USD", price=3_000.0, ts=T0 + timedelta(days=2))
    body = [*ticks()[:3], eth.to_bytes(), *ticks()[3:]]
    out = p.process(p.new_state(ASSET_SYMBOL), ASSET_SYMBOL, body, HOLDINGS)
    assert [b for b, _ in out.rejected] == [eth.to_bytes()]
    assert "symbol" in out.rejected[0][1]
    assert alert_keys(out) == backtest_keys()


def test_a_late_holding_is_reported_and_valued_from_the_next_price(engine: Engine) -> None:
    p = processor(engine)
    st = p.new_state(ASSET_SYMBOL)
    p.process(st, ASSET_SYMBOL, ticks()[:6], HOLDINGS[:1])
    out = p.process(st, ASSET_SYMBOL, ticks()[6:], HOLDINGS)  # sv's day-4 row comes on day 6
    assert [(u.holder, rebased) for u, rebased in out.late] == [("sv", True)]
    assert out.late_seen_until == T0 + timedelta(days=5)
    assert any(v["holder"] == "sv" for v in out.valuations.values())


def test_state_records_are_versioned(engine: Engine) -> None:
    p = processor(engine)
    st = p.new_state(ASSET_SYMBOL)
    st.partition, st.next_offset = 2, 41
    record = st.to_record()
    assert record["v"] == 2 and record["input"] == [2, 41]
    unversioned = {k: v for k, v in record.items() if k != "v"}  # as written before v1
    old = p.from_record(ASSET_SYMBOL, unversioned)
    assert (old.partition, old.next_offset) == (2, 41)
    with pytest.raises(StateVersionError, match="version 3"):
        p.from_record(ASSET_SYMBOL, {**record, "v": 3})


def test_tick_batch_framing_round_trips_and_rejects_other_frames() -> None:
    batch = TickBatch.of(ticks()[:3])
    assert TickBatch.decode(batch.encode()) == batch
    assert TickBatch.decode(TickBatch.of([]).encode()).ticks == ()
    with pytest.raises(RecordError, match="frame tag"):
        TickBatch.decode(b"H" + ticks()[0])
    name = internal_topic(Settings(topic_prefix="x-", faust_app_id="app"), VALUATION_INPUT)
    assert name == "x-app-valuation-input"
