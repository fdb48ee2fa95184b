"""Public ticker formats of Coinbase Exchange and Kraken (WebSocket v2), parsed purely.

No I/O: ``live.py`` owns the sockets. Each adapter builds its subscribe message and turns one
decoded message into zero or more ``PriceTick``s. Acks, heartbeats and status messages give
none; a venue error message raises ``VenueError``; a malformed ticker raises ``RecordError``.

Coinbase Exchange (wss://ws-feed.exchange.coinbase.com), ``ticker`` channel::

    {"type": "ticker", "sequence": 37475248783, "product_id": "BTC-USD", "price": "64012.5",
     "time": "2024-05-01T12:00:00.123456Z", "last_size": "0.0021", "trade_id": 1, ...}

Kraken v2 (wss://ws.kraken.com/v2), ``ticker`` channel; ``timestamp`` only in newer docs::

    {"channel": "ticker", "type": "snapshot" | "update",
     "data": [{"symbol": "BTC/USD", "last": 64012.5, "bid": 64012.4, "ask": 64012.6, ...}]}
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any, Protocol

from cpwatch.exceptions import CpwatchError, RecordError
from cpwatch.records import PriceTick
from producers.fields import FieldError, parse_number, parse_time

COINBASE_WS_URL = "wss://ws-feed.exchange.coinbase.com"
KRAKEN_WS_URL = "wss://ws.kraken.com/v2"
COINBASE_REST_URL = "https://api.exchange.coinbase.com"
_ALIASES = {"XBT": "BTC", "XXBT": "BTC", "ZUSD": "USD"}


class VenueError(CpwatchError):
    """The venue answered with an error (bad subscription, unknown product)."""


def normalise_symbol(symbol: str) -> str:
    """``btc/usd``, ``XBT/USD``, ``BTC_USD`` and ``BTC-USD`` all become ``BTC-USD``."""
    cleaned = symbol.strip().upper().replace("/", "-").replace("_", "-")
    if "-" not in cleaned:
        raise RecordError(f"symbol {symbol!r} has no base/quote separator", field="symbol")
    base, quote = cleaned.split("-", 1)
    return f"{_ALIASES.get(base, base)}-{_ALIASES.get(quote, quote)}"


def _field(data: dict[str, Any], name: str) -> Any:
    if name not in data:
        raise RecordError(f"ticker has no '{name}'", field=name)
    return data[name]


def _tick(**fields: Any) -> PriceTick:
    try:
        return PriceTick(**fields)
    except ValueError as exc:  # pydantic's ValidationError
        raise RecordError(f"ticker rejected: {str(exc).splitlines()[0]}") from exc


class VenueAdapter(Protocol):
    name: str
    default_url: str

    def subscribe(self, symbols: list[str]) -> dict[str, Any]: ...

    def parse(self, message: Any, received: datetime) -> list[PriceTick]: ...


class Coinbase:
    """Coinbase Exchange ``ticker`` channel; ``sequence`` becomes the tick's ``seq``."""

    name = "coinbase"
    default_url = COINBASE_WS_URL

    def subscribe(self, symbols: list[str]) -> dict[str, Any]:
        return {
            "type": "subscribe",
            "product_ids": [normalise_symbol(s) for s in symbols],
            "channels": ["ticker"],
        }

    def parse(self, message: Any, received: datetime) -> list[PriceTick]:
        if not isinstance(message, dict):
            raise RecordError("message is not a JSON object")
        kind = message.get("type")
        if kind == "error":
            raise VenueError(f"coinbase: {message.get('message')}: {message.get('reason', '')}")
        if kind != "ticker":
            return []  # subscriptions, heartbeat, status: nothing to price
        try:
            price = parse_number(_field(message, "price"), "price", minimum=0, strict_min=True)
            size = parse_number(message.get("last_size"), "last_size", required=False, minimum=0)
            ts = parse_time(message["time"], "time") if message.get("time") else received
            seq = int(message.get("sequence") or 0)
        except FieldError as exc:
            raise RecordError(f"coinbase ticker {exc}", field=exc.field) from exc
        except (TypeError, ValueError) as exc:
            raise RecordError(f"coinbase ticker: bad sequence: {exc}", field="sequence") from exc
        symbol = normalise_symbol(str(_field(message, "product_id")))
        return [_tick(venue=self.name, symbol=symbol, price=price, size=size, ts=ts, seq=seq)]


class Kraken:
    """Kraken WebSocket v2 ``ticker``; Kraken has no sequence, so ticks get a local counter."""

    name = "kraken"
    default_url = KRAKEN_WS_URL

    def __init__(self) -> None:
        self._seq = itertools.count(1)

    def subscribe(self, symbols: list[str]) -> dict[str, Any]:
        pairs = [normalise_symbol(s).replace("-", "/") for s in symbols]
        return {"method": "subscribe", "params": {"channel": "ticker", "symbol": pairs}}

    def parse(self, message: Any, received: datetime) -> list[PriceTick]:
        if not isinstance(message, dict):
            raise RecordError("message is not a JSON object")
        if message.get("method") in ("subscribe", "unsubscribe"):
            if message.get("success") is False:
                raise VenueError(f"kraken: {message.get('error', 'subscription refused')}")
            return []
        if message.get("channel") != "ticker" or message.get("type") not in ("snapshot", "update"):
            return []  # heartbeat, status, pong
        data = message.get("data")
        if not isinstance(data, list):
            raise RecordError("kraken ticker: 'data' is not a list", field="data")
        ticks = []
        for item in data:
            if not isinstance(item, dict):
                raise RecordError("kraken ticker: data item is not an object", field="data")
            try:
                price = parse_number(_field(item, "last"), "last", minimum=0, strict_min=True)
                stamp = item.get("timestamp")
                ts = parse_time(stamp, "timestamp") if stamp else received
            except FieldError as exc:
                raise RecordError(f"kraken ticker {exc}", field=exc.field) from exc
            symbol = normalise_symbol(str(_field(item, "symbol")))
            ticks.append(
                _tick(venue=self.name, symbol=symbol, price=price, ts=ts, seq=next(self._seq))
            )
        return ticks


def coinbase_rest_tick(body: Any, product_id: str, received: datetime) -> PriceTick:
    """``GET /products/{id}/ticker`` → tick; ``trade_id`` becomes ``seq``."""
    if not isinstance(body, dict):
        raise RecordError("coinbase REST ticker is not a JSON object")
    try:
        price = parse_number(_field(body, "price"), "price", minimum=0, strict_min=True)
        size = parse_number(body.get("size"), "size", required=False, minimum=0)
        ts = parse_time(body["time"], "time") if body.get("time") else received
        seq = int(body.get("trade_id") or 0)
    except FieldError as exc:
        raise RecordError(f"coinbase REST ticker {exc}", field=exc.field) from exc
    except (TypeError, ValueError) as exc:
        raise RecordError(f"coinbase REST ticker: bad trade_id: {exc}", field="trade_id") from exc
    symbol = normalise_symbol(product_id)
    return _tick(venue="coinbase", symbol=symbol, price=price, size=size, ts=ts, seq=seq)


ADAPTERS: dict[str, type[Coinbase] | type[Kraken]] = {"coinbase": Coinbase, "kraken": Kraken}


def adapter(name: str) -> VenueAdapter:
    try:
        return ADAPTERS[name.lower()]()
    except KeyError:
        raise VenueError(f"unknown venue {name!r}; known: {', '.join(ADAPTERS)}") from None
