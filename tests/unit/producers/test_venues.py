"""Pins producers.venues against the venues' documented ticker messages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cpwatch.exceptions import RecordError
from producers.venues import (
    Coinbase,
    Kraken,
    VenueError,
    adapter,
    coinbase_rest_tick,
    normalise_symbol,
)

NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)

COINBASE_TICKER = {
    "type": "ticker",
    "sequence": 37475248783,
    "product_id": "BTC-USD",
    "price": "64012.51",
    "open_24h": "63000",
    "volume_24h": "12000.1",
    "low_24h": "62000",
    "high_24h": "65000",
    "volume_30d": "400000",
    "best_bid": "64012.50",
    "best_bid_size": "0.1",
    "best_ask": "64012.52",
    "best_ask_size": "0.2",
    "side": "buy",
    "time": "2025-06-10T11:59:58.061769Z",
    "trade_id": 370843401,
    "last_size": "0.0021",
}
KRAKEN_UPDATE = {
    "channel": "ticker",
    "type": "update",
    "data": [
        {
            "symbol": "BTC/USD",
            "bid": 64012.4,
            "bid_qty": 1.2,
            "ask": 64012.6,
            "ask_qty": 0.4,
            "last": 64012.5,
            "volume": 1500.2,
            "vwap": 63500.1,
            "low": 62000.0,
            "high": 65000.0,
            "change": 100.0,
            "change_pct": 0.16,
            "timestamp": "2025-06-10T11:59:59.123456Z",
        }
    ],
}


@pytest.mark.parametrize("raw", ["BTC-USD", "btc/usd", "XBT/USD", "BTC_USD", " btc-usd "])
def test_symbols_normalise(raw: str) -> None:
    assert normalise_symbol(raw) == "BTC-USD"


def test_symbol_without_separator_is_rejected() -> None:
    with pytest.raises(RecordError):
        normalise_symbol("BTCUSD")


def test_subscribe_messages_match_docs() -> None:
    assert Coinbase().subscribe(["btc/usd"]) == {
        "type": "subscribe",
        "product_ids": ["BTC-USD"],
        "channels": ["ticker"],
    }
    assert Kraken().subscribe(["BTC-USD"]) == {
        "method": "subscribe",
        "params": {"channel": "ticker", "symbol": ["BTC/USD"]},
    }


def test_coinbase_ticker() -> None:
    [tick] = Coinbase().parse(COINBASE_TICKER, NOW)
    assert (tick.venue, tick.symbol, tick.price, tick.size) == (
        "coinbase",
        "BTC-USD",
        64012.51,
        0.0021,
    )
    assert tick.seq == 37475248783
    assert tick.ts == datetime(2025, 6, 10, 11, 59, 58, 61769, tzinfo=UTC)
    assert tick.key == "coinbase:BTC-USD"


@pytest.mark.parametrize(
    "message",
    [
        {"type": "subscriptions", "channels": [{"name": "ticker", "product_ids": ["BTC-USD"]}]},
        {
            "type": "heartbeat",
            "sequence": 90,
            "last_trade_id": 20,
            "product_id": "BTC-USD",
            "time": "2014-11-07T08:19:28.464459Z",
        },
        {"type": "status", "products": [], "currencies": []},
    ],
)
def test_coinbase_non_ticker_messages_give_nothing(message: dict[str, object]) -> None:
    assert Coinbase().parse(message, NOW) == []


def test_coinbase_error_raises_venue_error() -> None:
    with pytest.raises(VenueError, match="Failed to subscribe"):
        Coinbase().parse({"type": "error", "message": "Failed to subscribe", "reason": "x"}, NOW)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": "abc"}, "price"),
        ({"price": "0"}, "price"),
        ({"time": "noon"}, "time"),
        ({"last_size": "-1"}, "last_size"),
        ({"product_id": "BTCUSD"}, "symbol"),
    ],
)
def test_coinbase_malformed_ticker_names_field(change: dict[str, str], field: str) -> None:
    with pytest.raises(RecordError) as info:
        Coinbase().parse({**COINBASE_TICKER, **change}, NOW)
    assert info.value.field == field


def test_coinbase_missing_time_uses_receive_time() -> None:
    message = {k: v for k, v in COINBASE_TICKER.items() if k != "time"}
    assert Coinbase().parse(message, NOW)[0].ts == NOW


def test_kraken_update_and_local_sequence() -> None:
    kraken = Kraken()
    [a] = kraken.parse(KRAKEN_UPDATE, NOW)
    [b] = kraken.parse({**KRAKEN_UPDATE, "type": "snapshot"}, NOW)
    assert (a.venue, a.symbol, a.price, a.size) == ("kraken", "BTC-USD", 64012.5, None)
    assert a.ts == datetime(2025, 6, 10, 11, 59, 59, 123456, tzinfo=UTC)
    assert (a.seq, b.seq) == (1, 2)


def test_kraken_without_timestamp_uses_receive_time() -> None:
    item = {k: v for k, v in KRAKEN_UPDATE["data"][0].items() if k != "timestamp"}  # type: ignore[union-attr]
    [tick] = Kraken().parse({**KRAKEN_UPDATE, "data": [item]}, NOW)
    assert tick.ts == NOW


@pytest.mark.parametrize(
    "message",
    [
        {"channel": "heartbeat"},
        {
            "channel": "status",
            "type": "update",
            "data": [{"api_version": "v2", "system": "online"}],
        },
        {
            "method": "subscribe",
            "result": {"channel": "ticker", "snapshot": True, "symbol": "BTC/USD"},
            "success": True,
        },
        {"method": "pong"},
    ],
)
def test_kraken_control_messages_give_nothing(message: dict[str, object]) -> None:
    assert Kraken().parse(message, NOW) == []


def test_kraken_refused_subscription_is_fatal() -> None:
    with pytest.raises(VenueError, match="not supported"):
        Kraken().parse(
            {"method": "subscribe", "success": False, "error": "Currency pair not supported"}, NOW
        )


@pytest.mark.parametrize(
    "message",
    [
        {"channel": "ticker", "type": "update", "data": {"symbol": "BTC/USD"}},
        {"channel": "ticker", "type": "update", "data": [{"symbol": "BTC/USD"}]},
        {"channel": "ticker", "type": "update", "data": [{"symbol": "BTC/USD", "last": "x"}]},
        ["not", "an", "object"],
    ],
)
def test_kraken_malformed(message: object) -> None:
    with pytest.raises(RecordError):
        Kraken().parse(message, NOW)


def test_coinbase_rest_ticker() -> None:
    body = {
        "ask": "64012.6",
        "bid": "64012.4",
        "volume": "12000",
        "trade_id": 86326522,
        "price": "64012.5",
        "size": "0.00312",
        "time": "2025-06-10T11:59:57.5Z",
    }
    tick = coinbase_rest_tick(body, "BTC-USD", NOW)
    assert (tick.price, tick.size, tick.seq) == (64012.5, 0.00312, 86326522)
    assert tick.ts == datetime(2025, 6, 10, 11, 59, 57, 500000, tzinfo=UTC)
    with pytest.raises(RecordError):
        coinbase_rest_tick({"message": "NotFound"}, "BTC-USD", NOW)


def test_unknown_venue() -> None:
    with pytest.raises(VenueError):
        adapter("binance")
    assert adapter("Kraken").name == "kraken"
