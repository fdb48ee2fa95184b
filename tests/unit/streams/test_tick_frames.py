"""route-ticks' binary tick frame (cpwatch/internal_topics.py, streams/columnar_ticks.py): it
round-trips, a damaged frame is refused naming the part, an earlier worker's JSON-lines frame is
still read, and the treasury gives the same outputs from columns as from the JSON lines."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpwatch.exceptions import RecordError
from cpwatch.internal_topics import TickBatch, TickColumnsFrame, decode_tick_message
from cpwatch.records import PriceTick
from streams.columnar import to_us
from streams.columnar_ticks import TickColumns, decode_ticks, from_frame, to_frame
from streams.rules import LevelRule
from streams.treasury_agent import _Chunk, _ticks_of
from streams.treasury_processor import ASSET_SYMBOL, BatchOutput, Engine, TreasuryProcessor

T0 = datetime(2025, 1, 1, tzinfo=UTC)
US_MAX = to_us(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))

venues = st.sampled_from(["kraken", "coinbase", "bitstamp", "bénch", "x" * 64])
rows = st.lists(
    st.tuples(
        venues,
        st.floats(min_value=1e-9, max_value=1e12, allow_nan=False, allow_infinity=False),
        st.integers(-(2**40), 2**52),
    ),
    max_size=50,
)


def columns(symbol: str, data: list[tuple[str, float, int]]) -> TickColumns:
    n = len(data)
    return TickColumns(
        np.arange(n, dtype=np.intp),
        [v for v, _, _ in data],
        [symbol] * n,
        np.array([p for _, p, _ in data], np.float64),
        np.array([t for _, _, t in data], np.int64),
    )


def frame_bytes(symbol: str, data: list[tuple[str, float, int]]) -> bytes:
    return to_frame(symbol, columns(symbol, data)).encode()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["BTC-USD", "ÉTH-€"]), rows)
def test_columns_round_trip_through_the_frame(
    symbol: str, data: list[tuple[str, float, int]]
) -> None:
    raw = frame_bytes(symbol, data)
    frame = decode_tick_message(raw)
    assert isinstance(frame, TickColumnsFrame)
    assert frame == TickColumnsFrame.decode(raw) and frame.encode() == raw
    got = from_frame(frame)
    assert got.venue == [v for v, _, _ in data] and got.symbol == [symbol] * len(data)
    assert got.price.tolist() == [p for _, p, _ in data]
    assert got.t_us.tolist() == [t for _, _, t in data]
    assert got.row.tolist() == list(range(len(data))) and got.bad == []
    assert len(raw) < 40 + 80 * len(set(got.venue)) + 18 * len(data)


@settings(max_examples=300, deadline=None)
@given(rows.filter(bool), st.data())
def test_a_damaged_frame_is_refused_with_the_field(
    data: list[tuple[str, float, int]], draw: st.DataObject
) -> None:
    raw = frame_bytes("BTC-USD", data)
    cut = draw.draw(st.integers(1, len(raw) - 1))
    damaged = draw.draw(st.sampled_from([raw[:cut], raw + b"\x00" * cut]))
    with pytest.raises(RecordError) as info:
        from_frame(TickColumnsFrame.decode(damaged))
    assert info.value.field in ("frame", "symbol", "venue")


def _with_columns(idx: bytes, t_us: bytes, price: bytes, venues: tuple[str, ...] = ("v",)) -> bytes:
    return TickColumnsFrame("BTC-USD", venues, idx, t_us, price).encode()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (None, "frame"),
        (b"", "frame"),
        (b"X{}", "frame"),
        (b"C\x01", "frame"),
        (b"C" + struct.pack("<HHI", 2, 0, 0) + b"\xff\xfe", "symbol"),
        (b"C" + struct.pack("<HHI", 0, 0, 0), "symbol"),
        (b"C" + struct.pack("<HHI", 1, 1, 0) + b"S" + struct.pack("<H", 1) + b"\xff", "venue"),
        (b"C" + struct.pack("<HHI", 1, 1, 0) + b"S\x05", "frame"),
        (b"C" + struct.pack("<HHI", 1, 0, 1) + b"S" + b"\x00" * 17, "frame"),
    ],
)
def test_a_malformed_frame_names_the_part(raw: bytes | None, field: str) -> None:
    with pytest.raises(RecordError) as info:
        decode_tick_message(raw)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (_with_columns(b"\x01\x00", struct.pack("<q", 0), struct.pack("<d", 1.0)), "venue"),
        (_with_columns(b"\x00\x00", struct.pack("<q", 0), struct.pack("<d", 0.0)), "price"),
        (
            _with_columns(b"\x00\x00", struct.pack("<q", 0), struct.pack("<d", float("nan"))),
            "price",
        ),
        (_with_columns(b"\x00\x00", struct.pack("<q", US_MAX + 1), struct.pack("<d", 1.0)), "ts"),
        (_with_columns(b"\x00\x00", struct.pack("<q", 0), struct.pack("<d", 1.0), ()), "venue"),
    ],
)
def test_columns_the_engine_cannot_use_are_refused(raw: bytes, field: str) -> None:
    frame = decode_tick_message(raw)
    assert isinstance(frame, TickColumnsFrame)
    with pytest.raises(RecordError) as info:
        from_frame(frame)
    assert info.value.field == field


def test_a_frame_needs_columns_of_one_length() -> None:
    with pytest.raises(ValueError, match="lengths"):
        TickColumnsFrame("BTC-USD", ("v",), b"\x00\x00", b"", b"").encode()


def test_an_earlier_workers_json_lines_frame_is_still_read() -> None:
    lines = [_tick(i, 60_000 + i) for i in range(3)]
    got = decode_tick_message(TickBatch.of(lines).encode())
    assert got == TickBatch(tuple(lines))


def _tick(i: int, price: float, venue: str = "v1", symbol: str = ASSET_SYMBOL) -> bytes:
    ts = T0 + timedelta(minutes=i)
    return PriceTick(venue=venue, symbol=symbol, price=price, ts=ts, seq=i).to_bytes()


def _run(engine: Engine, batches: list[list[bytes] | TickColumns]) -> BatchOutput:
    """The outputs of these batches in turn, with the state record at the end among the
    valuations (under ``"state"``), so one comparison covers both."""
    p = TreasuryProcessor(
        [LevelRule(id="lvl", holder="*", type="level", threshold_usd=1)],
        timedelta(minutes=5),
        2.0,
        engine=engine,
    )
    st_ = p.new_state(ASSET_SYMBOL)
    out = BatchOutput()
    for b in batches:
        p.process(st_, ASSET_SYMBOL, b, (), out)
    out.valuations["state"] = st_.to_record()
    return out


@pytest.mark.parametrize("engine", ["columnar", "scalar"])
def test_the_treasury_gives_the_same_outputs_from_columns_as_from_lines(engine: Engine) -> None:
    prices = [60_000, 61_000, 61_000, 59_000, 64_000, 64_500, 58_000, 70_000]
    lines = [_tick(i, p, venue=("v1", "v2", "v3")[i % 3]) for i, p in enumerate(prices)]
    lines.insert(4, _tick(2, 61_000, venue="v3"))  # a redelivery
    lines.insert(6, _tick(1, 50_000, venue="v1"))  # older than its venue's last: dropped
    want = _run(engine, [lines[:5], lines[5:]])
    cols = decode_ticks(lines)
    via_frames = [
        from_frame(TickColumnsFrame.decode(to_frame(ASSET_SYMBOL, part).encode()))
        for part in (cols.take(np.arange(5)), cols.take(np.arange(5, len(cols))))
    ]
    for batches in (via_frames, [TickColumns.concat(via_frames, [5, len(cols) - 5])]):
        got = _run(engine, list(batches))
        assert (got.alerts, got.valuations, got.venue_events) == (
            want.alerts,
            want.valuations,
            want.venue_events,
        )
        assert got.rejected == want.rejected == []


@pytest.mark.parametrize("engine", ["columnar", "scalar"])
def test_a_tick_of_another_symbol_in_columns_is_rejected_with_its_line(engine: Engine) -> None:
    lines = [_tick(0, 60_000), _tick(1, 61_000, symbol="ETH-USD"), _tick(2, 62_000)]
    cols = decode_ticks(lines)
    out = _run(engine, [cols])
    want = _run(engine, [lines])
    assert out.rejected_at == want.rejected_at == [1]
    assert [r for _, r in out.rejected] == [r for _, r in want.rejected]
    assert PriceTick.parse(out.rejected[0][0]).model_dump(exclude={"seq"}) == PriceTick.parse(
        lines[1]
    ).model_dump(exclude={"seq"})


def test_a_treasury_chunk_holds_one_frame_kind_and_numbers_ticks_across_messages() -> None:
    lines = [_tick(i, 60_000 + i) for i in range(5)]
    cols = decode_ticks(lines)
    first, second = (
        _ticks_of(to_frame(ASSET_SYMBOL, cols.take(np.arange(lo, hi))).encode())
        for lo, hi in ((0, 2), (2, 5))
    )
    chunk = _Chunk()
    chunk.add(first, "m1")
    assert chunk.takes(second) and not chunk.takes(lines[:1])
    chunk.add(second, "m2")
    ticks = chunk.ticks()
    assert isinstance(ticks, TickColumns)
    assert ticks.row.tolist() == [0, 1, 2, 3, 4] and ticks.t_us.tolist() == cols.t_us.tolist()
    assert chunk.owners == [(0, "m1"), (2, "m2")]
    old = _Chunk()
    old.add(_ticks_of(TickBatch.of(lines).encode()), "m0")
    assert old.ticks() == lines and not old.takes(first) and _Chunk().takes(first)
