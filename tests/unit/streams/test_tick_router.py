"""route-ticks without engines: what it forwards per symbol and what it dead-letters equal
what ``PriceTick.parse`` accepts and refuses, tick by tick, in input order; what it forwards
is the ticks' venue, symbol, price and time as columns (the treasury reads no more)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpwatch.exceptions import RecordError
from cpwatch.internal_topics import TickColumnsFrame
from cpwatch.records import PriceTick
from runtime.consumers import IDLE_FETCH_WAIT_MS
from streams import tick_router
from streams.columnar import from_us
from streams.columnar_ticks import from_frame

Seen = tuple[str, str, float, datetime]  # what a forwarded tick keeps: venue, symbol, price, ts

T0 = datetime(2025, 3, 1, tzinfo=UTC)


@dataclass
class Rec:
    """The fields of an aiokafka ConsumerRecord that the router reads."""

    key: bytes | None
    value: bytes | None
    topic: str = "price-ticks"
    partition: int = 0
    offset: int = 0


class Topic:
    """Records what is sent to it; each send resolves at once, as an acknowledged one would."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sent.append((key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _route(records: list[Rec]) -> tuple[Topic, Topic]:
    by_symbol, dlq = Topic(), Topic()

    async def go() -> None:
        pending = await tick_router.route_batch(records, by_symbol, dlq)  # type: ignore[arg-type]
        await asyncio.gather(*pending)

    asyncio.run(go())
    return by_symbol, dlq


def _forwarded(sent: list[tuple[bytes, bytes]]) -> dict[str, list[Seen]]:
    got: dict[str, list[Seen]] = {}
    for key, value in sent:
        frame = TickColumnsFrame.decode(value)
        assert frame.symbol == key.decode()
        cols = from_frame(frame)
        got.setdefault(key.decode(), []).extend(
            (v, s, p, from_us(t))
            for v, s, p, t in zip(
                cols.venue, cols.symbol, cols.price.tolist(), cols.t_us.tolist(), strict=True
            )
        )
    return got


def _expected(records: list[Rec]) -> tuple[dict[str, list[Seen]], list[tuple[int, str]]]:
    forwarded: dict[str, list[Seen]] = {}
    refused: list[tuple[int, str]] = []
    for r in records:
        try:
            tick = PriceTick.parse(r.value)
        except RecordError as exc:
            refused.append((r.offset, str(exc)))
            continue
        forwarded.setdefault(tick.symbol, []).append((tick.venue, tick.symbol, tick.price, tick.ts))
    return forwarded, refused


tick_dicts = st.fixed_dictionaries(
    {
        "venue": st.sampled_from(["kraken", " coinbase ", "", "x" * 70]),
        "symbol": st.sampled_from(["BTC-USD", "ETH-USD", "btc-usd"]),
        "price": st.one_of(
            st.floats(min_value=-1, max_value=1e6),
            st.sampled_from([float("nan"), float("inf")]),
            st.integers(-5, 10**6),
        ),
        "ts": st.one_of(
            st.integers(-3600, 3600).map(lambda s: (T0 + timedelta(seconds=s)).isoformat()),
            st.just("2999-01-01T00:00:00Z"),
            st.just("yesterday"),
        ),
    },
    optional={"size": st.floats(0, 10), "seq": st.integers(-1, 5), "extra": st.just("x")},
)
values = st.one_of(
    tick_dicts.map(lambda d: json.dumps(d).encode()),
    st.just(b"not json"),
    st.just(b"[1, 2]"),
    st.none(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=40))
def test_forwards_and_refuses_exactly_what_the_record_type_does(raw: list[bytes | None]) -> None:
    records = [Rec(b"k", v, offset=i) for i, v in enumerate(raw)]
    by_symbol, dlq = _route(records)
    want, refused = _expected(records)
    assert _forwarded(by_symbol.sent) == want
    letters = [json.loads(v) for _, v in dlq.sent]
    assert sorted((d["offset"], d["reason"]) for d in letters) == sorted(refused)
    assert all(d["stage"] == "route-ticks" and d["topic"] == "price-ticks" for d in letters)


def test_a_valid_tick_in_another_spelling_is_forwarded_as_the_same_tick() -> None:
    tick = PriceTick(venue="kraken", symbol="BTC-USD", price=100.0, ts=T0)
    compact = tick.to_bytes()
    spaced = json.dumps(tick.to_dict(), indent=1).encode()  # valid, multi-line
    by_symbol, dlq = _route([Rec(b"k", compact), Rec(b"k", spaced, offset=1)])
    assert dlq.sent == []
    assert len(by_symbol.sent) == 1
    seen = ("kraken", "BTC-USD", 100.0, T0)
    assert _forwarded(by_symbol.sent) == {"BTC-USD": [seen, seen]}


class _Consumer:
    """Plays a script of polls; records each poll's wait and the fetch wait then in force."""

    def __init__(self, script: list[dict[str, list[Rec]]]) -> None:
        self.script = script
        self.polls: list[tuple[int, int]] = []
        self.commits: list[dict[str, int]] = []
        self._fetcher = type("Fetcher", (), {"_fetch_max_wait_ms": -1})()

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[str, list[Rec]]:
        self.polls.append((timeout_ms, self._fetcher._fetch_max_wait_ms))
        if not self.script:
            raise asyncio.CancelledError
        return self.script.pop(0)

    async def commit(self, offsets: dict[str, int]) -> None:
        self.commits.append(offsets)


def test_the_long_fetch_wait_starts_after_one_short_quiet_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tick = PriceTick(venue="v", symbol="BTC-USD", price=1.0, ts=T0)
    burst = {"tp": [Rec(tick.key.encode(), tick.to_bytes(), offset=7)]}
    consumer = _Consumer([burst, {}, {}, {}])
    monkeypatch.setattr(tick_router, "group_consumer", lambda *a, **k: consumer)
    by_symbol, dlq = Topic(), Topic()

    async def go() -> None:
        await tick_router.run(None, by_symbol, dlq)  # type: ignore[arg-type]

    with pytest.raises(asyncio.CancelledError):  # the script ran out
        asyncio.run(go())
    idle, busy = tick_router.IDLE_POLL_MS, tick_router.FETCH_WAIT_MS
    assert consumer.polls == [
        (idle, -1),  # started idle; the fetch wait is the consumer's own until records come
        (0, busy),  # a batch in flight: only what is already fetched
        (tick_router.QUIET_POLL_MS, busy),  # committed; a short quiet poll decides
        (idle, IDLE_FETCH_WAIT_MS),  # it found nothing: long fetches, long polls
        (idle, IDLE_FETCH_WAIT_MS),
    ]
    assert consumer.commits == [{"tp": 8}]
    assert [key for key, _ in by_symbol.sent] == [b"BTC-USD"] and not dlq.sent
