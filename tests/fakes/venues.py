"""Local fake exchange WebSocket servers speaking Coinbase Exchange and Kraken v2 ticker formats.

Each server runs its own event loop on a background thread, bound to 127.0.0.1 on a free port,
so synchronous tests and a producer's own ``asyncio.run`` can both talk to it. It checks the
client's subscribe message against the venue's documented shape, answers like the venue
(subscription ack, status, heartbeats), streams the given prices once across connections, and
can drop the TCP connection abruptly after a number of ticks to exercise reconnects.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

T0 = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
START_TIMEOUT_S = 10.0


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class FakeVenue:
    """``kind`` is ``coinbase`` or ``kraken``; ``drop_after`` ticks, the first connection dies."""

    kind: str
    prices: list[float]
    drop_after: int | None = None
    tick_gap_s: float = 0.005
    kraken_timestamps: bool = True
    supported: tuple[str, ...] = ("BTC-USD", "ETH-USD")  # others are refused, as a venue would
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    sent: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _server: Server | None = None
    _thread: threading.Thread | None = None
    _stopped: asyncio.Event | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def __enter__(self) -> FakeVenue:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S):
            raise RuntimeError("fake venue did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop and self._stopped:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread:
            self._thread.join(START_TIMEOUT_S)

    def _run(self, ready: threading.Event) -> None:
        asyncio.run(self._main(ready))

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, ping_interval=None) as server:
            self._server = server
            self.port = next(iter(server.sockets)).getsockname()[1]
            ready.set()
            await self._stopped.wait()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        first_connection = self.connections == 1
        if self.kind == "kraken":
            await ws.send(
                json.dumps(
                    {
                        "channel": "status",
                        "type": "update",
                        "data": [
                            {
                                "api_version": "v2",
                                "connection_id": 4242,
                                "system": "online",
                                "version": "2.0.10",
                            }
                        ],
                    }
                )
            )
        sub = json.loads(await asyncio.wait_for(ws.recv(), 5))
        self.subscriptions.append(sub)
        symbols = self._check_subscription(sub)
        if symbols is None:
            await ws.send(json.dumps(self._error(sub)))
            await ws.close()
            return
        await ws.send(json.dumps(self._ack(symbols)))
        sent_here = 0
        while self.sent < len(self.prices):
            if first_connection and self.drop_after is not None and sent_here >= self.drop_after:
                ws.transport.abort()  # no close frame: what a dropped network looks like
                return
            await ws.send(json.dumps(self._ticker(symbols[0], self.sent, sent_here == 0)))
            self.sent += 1
            sent_here += 1
            if self.kind == "kraken" and self.sent % 3 == 0:
                await ws.send(json.dumps({"channel": "heartbeat"}))
            await asyncio.sleep(self.tick_gap_s)
        while True:  # all prices sent: idle like a quiet market, heartbeats only
            heartbeat = (
                {"channel": "heartbeat"}
                if self.kind == "kraken"
                else {
                    "type": "heartbeat",
                    "sequence": 1000 + self.sent,
                    "last_trade_id": self.sent,
                    "product_id": symbols[0],
                    "time": _iso(datetime.now(UTC)),
                }
            )
            await ws.send(json.dumps(heartbeat))
            await asyncio.sleep(0.2)

    def _check_subscription(self, sub: dict[str, Any]) -> list[str] | None:
        if self.kind == "coinbase":
            ok = (
                sub.get("type") == "subscribe"
                and "ticker" in sub.get("channels", [])
                and isinstance(sub.get("product_ids"), list)
                and sub["product_ids"]
                and all(p in self.supported for p in sub["product_ids"])
            )
            return list(sub["product_ids"]) if ok else None
        params = sub.get("params") or {}
        ok = (
            sub.get("method") == "subscribe"
            and params.get("channel") == "ticker"
            and isinstance(params.get("symbol"), list)
            and params["symbol"]
            and all(s.replace("/", "-") in self.supported and "/" in s for s in params["symbol"])
        )
        return list(params["symbol"]) if ok else None

    def _error(self, sub: dict[str, Any]) -> dict[str, Any]:
        if self.kind == "coinbase":
            return {"type": "error", "message": "Failed to subscribe", "reason": "bad request"}
        return {
            "method": "subscribe",
            "success": False,
            "error": "Currency pair not supported",
            "time_in": _iso(T0),
            "time_out": _iso(T0),
        }

    def _ack(self, symbols: list[str]) -> dict[str, Any]:
        if self.kind == "coinbase":
            channel = {"name": "ticker", "product_ids": symbols}
            return {"type": "subscriptions", "channels": [channel]}
        return {
            "method": "subscribe",
            "result": {"channel": "ticker", "snapshot": True, "symbol": symbols[0]},
            "success": True,
            "time_in": _iso(T0),
            "time_out": _iso(T0),
        }

    def tick_time(self, i: int) -> datetime:
        return T0 + timedelta(seconds=i)

    def _ticker(self, symbol: str, i: int, snapshot: bool) -> dict[str, Any]:
        price = self.prices[i]
        if self.kind == "coinbase":
            return {
                "type": "ticker",
                "sequence": 37475248783 + i,
                "product_id": symbol,
                "price": f"{price:.2f}",
                "open_24h": "60000.00",
                "volume_24h": "12000.5",
                "low_24h": "59000.00",
                "high_24h": "65000.00",
                "volume_30d": "400000.1",
                "best_bid": f"{price - 0.01:.2f}",
                "best_bid_size": "0.5",
                "best_ask": f"{price + 0.01:.2f}",
                "best_ask_size": "0.7",
                "side": "buy",
                "time": _iso(self.tick_time(i)),
                "trade_id": 900000 + i,
                "last_size": f"{0.001 * (i + 1):.8f}",
            }
        item: dict[str, Any] = {
            "symbol": symbol,
            "bid": price - 0.1,
            "bid_qty": 1.5,
            "ask": price + 0.1,
            "ask_qty": 2.0,
            "last": price,
            "volume": 1234.5,
            "vwap": price,
            "low": price - 500,
            "high": price + 500,
            "change": 12.3,
            "change_pct": 0.02,
        }
        if self.kraken_timestamps:
            item["timestamp"] = _iso(self.tick_time(i))
        return {"channel": "ticker", "type": "snapshot" if snapshot else "update", "data": [item]}
