"""Pins producers.rest: new trades only, retry on 429/5xx/network, fatal on other 4xx."""

from __future__ import annotations

import random
import threading

import httpx
import pytest

from cpwatch.records import PriceTick
from producers.live import Backoff
from producers.rest import make_client, poll_coinbase
from producers.summary import Bad
from producers.venues import VenueError


def _body(trade: int, price: str) -> dict[str, object]:
    return {
        "ask": price,
        "bid": price,
        "volume": "1",
        "trade_id": trade,
        "price": price,
        "size": "0.01",
        "time": "2025-06-10T12:00:00Z",
    }


def _run(
    responses: list[httpx.Response | Exception],
) -> tuple[list[PriceTick], list[Bad], list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        item = responses[len(requests) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    ticks: list[PriceTick] = []
    bad: list[Bad] = []
    with make_client("https://api.example.com", httpx.MockTransport(handler)) as client:
        poll_coinbase(
            client,
            "btc/usd",
            on_tick=ticks.append,
            on_bad=bad.append,
            stop=threading.Event(),
            interval=0.0,
            max_polls=len(responses),
            backoff=Backoff(base=0.001, cap=0.002, rng=random.Random(1)),
        )  # noqa: S311
    return ticks, bad, requests


def test_polls_path_and_emits_only_new_trades() -> None:
    ticks, bad, requests = _run(
        [
            httpx.Response(200, json=_body(1, "100.5")),
            httpx.Response(200, json=_body(1, "100.5")),
            httpx.Response(200, json=_body(2, "101")),
        ]
    )
    assert requests[0].url.path == "/products/BTC-USD/ticker"
    assert "cpwatch" in requests[0].headers["user-agent"]
    assert [(t.seq, t.price, t.venue, t.symbol) for t in ticks] == [
        (1, 100.5, "coinbase", "BTC-USD"),
        (2, 101, "coinbase", "BTC-USD"),
    ]
    assert not bad


def test_busy_and_network_errors_are_retried_and_counted() -> None:
    request = httpx.Request("GET", "https://api.example.com")
    ticks, bad, _ = _run(
        [
            httpx.Response(429),
            httpx.Response(503),
            httpx.ConnectTimeout("slow", request=request),
            httpx.Response(200, content=b"<html>oops"),
            httpx.Response(200, json=_body(5, "99")),
        ]
    )
    assert [t.seq for t in ticks] == [5]
    assert [b.kind for b in bad] == ["venue busy", "venue busy", "venue unreachable", "bad ticker"]


def test_client_errors_are_fatal() -> None:
    with pytest.raises(VenueError, match="404"):
        _run([httpx.Response(404, json={"message": "NotFound"})])
