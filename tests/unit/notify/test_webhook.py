from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from notify import slack
from notify.delivery import RetryPolicy
from notify.lifecycle import Notification
from notify.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookConfig,
    WebhookSender,
    endpoint_of,
    sign,
    verify_signature,
)
from streams.alerts import Alert

SECRET = SecretStr("s3cret-s3cret-s3cret")
FAST = RetryPolicy(max_attempts=4, base_s=0.001, cap_s=0.01)
LOCAL = WebhookConfig(connect_timeout_s=2, read_timeout_s=5, retry=FAST, allowlist=("127.0.0.1",))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def receiver(handler: Handler) -> AsyncIterator[int]:
    """A real HTTP server on 127.0.0.1, random port; yields the port."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_500_three_times_then_200_gives_one_delivery_with_four_signed_attempts() -> None:
    seen: list[tuple[dict[str, str], bytes]] = []

    async def flaky(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.read()))
        return web.Response(status=500 if len(seen) <= 3 else 200)

    async def main() -> Any:
        async with receiver(flaky) as port:
            # A name, pinned to the vetted IP: the Host header keeps the name.
            sender = WebhookSender(LOCAL, resolver=to_loopback)
            url = f"http://hooks.test:{port}/in?x=1"
            result = await sender.send(url, {"hello": "world"}, delivery_id="d-1", secret=SECRET)
            await sender.aclose()
            return result, port

    result, port = asyncio.run(main())
    assert result.delivered and result.delivery_id == "d-1"
    assert [a.status for a in result.attempts] == [500, 500, 500, 200]
    assert [a.n for a in result.attempts] == [1, 2, 3, 4]
    assert result.attempts[-1].error is None and result.attempts[0].error == "HTTP 500"
    assert all(a.latency_ms >= 0 and a.at.tzinfo is not None for a in result.attempts)
    assert len(seen) == 4
    for headers, body in seen:
        assert headers["Idempotency-Key"] == "d-1"
        assert headers["Host"] == f"hooks.test:{port}"
        assert verify_signature(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert json.loads(body) == {"hello": "world"}


def test_other_4xx_and_redirects_are_not_retried() -> None:
    statuses = iter([404, 302])

    async def refuse(request: web.Request) -> web.Response:
        status = next(statuses)
        return web.Response(status=status, headers={"Location": "http://10.0.0.1/"})

    async def main() -> Any:
        async with receiver(refuse) as port:
            sender = WebhookSender(LOCAL)
            url = f"http://127.0.0.1:{port}/"
            a = await sender.send(url, b"{}", delivery_id="a", secret=SECRET)
            b = await sender.send(url, b"{}", delivery_id="b", secret=SECRET)
            await sender.aclose()
            return a, b

    a, b = asyncio.run(main())
    assert not a.delivered and [x.status for x in a.attempts] == [404]
    assert not b.delivered and b.last_error == "redirect not followed"


def test_429_retry_after_is_honoured_within_cap() -> None:
    calls = 0
    delays: list[float] = []

    async def busy(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=429 if calls == 1 else 204, headers={"Retry-After": "7"})

    async def fake_sleep(s: float) -> None:
        delays.append(s)

    async def main() -> Any:
        async with receiver(busy) as port:
            sender = WebhookSender(LOCAL, sleep=fake_sleep)
            result = await sender.send(f"http://127.0.0.1:{port}/", {}, delivery_id="x")
            await sender.aclose()
            return result

    result = asyncio.run(main())
    assert result.delivered and [a.status for a in result.attempts] == [429, 204]
    assert delays == [FAST.cap_s]  # Retry-After 7s, capped by the policy


def test_dead_endpoint_gives_up_after_max_attempts() -> None:
    async def main() -> Any:
        sender = WebhookSender(LOCAL)
        result = await sender.send(f"http://127.0.0.1:{closed_port()}/", {}, delivery_id="z")
        await sender.aclose()
        return result

    result = asyncio.run(main())
    assert not result.delivered and len(result.attempts) == FAST.max_attempts
    assert all(
        a.status is None and a.retryable and "Connect" in (a.error or "") for a in result.attempts
    )


def test_ssrf_refusal_is_final_and_rechecked_each_attempt() -> None:
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])  # DNS rebinding after the first attempt
    hits = 0

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    async def fail(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(status=503)

    async def main() -> Any:
        async with receiver(fail) as port:
            sender = WebhookSender(LOCAL, resolver=rebinding)
            result = await sender.send(f"http://evil.test:{port}/", {}, delivery_id="r")
            await sender.aclose()
            return result

    result = asyncio.run(main())
    assert hits == 1 and not result.delivered
    assert [a.status for a in result.attempts] == [503, None]
    assert "refused: evil.test resolves to non-public address 10.0.0.1" in (result.last_error or "")
    assert not result.attempts[-1].retryable


def test_not_allowlisted_loopback_never_connects() -> None:
    async def main() -> Any:
        sender = WebhookSender(WebhookConfig(retry=FAST))
        result = await sender.send("http://127.0.0.1:9/", {}, delivery_id="n")
        await sender.aclose()
        return result

    result = asyncio.run(main())
    assert len(result.attempts) == 1 and (result.last_error or "").startswith("refused")


def test_slack_payload_sent_unsigned_through_the_webhook_path() -> None:
    got: list[tuple[dict[str, str], Any]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.json()))
        return web.Response(text="ok")

    alert = Alert("lvl", "acme", datetime(2024, 3, 5, tzinfo=UTC), "down", 9e8, 1e9, 6e4, 15e3)
    n = Notification("sub", "firing", alert, alert.fingerprint, datetime(2024, 3, 5, tzinfo=UTC))
    event = {"id": "e1", "title": "<b>Law</b> & order", "url": "https://x.org/a"}

    async def main() -> Any:
        async with receiver(hook) as port:
            sender = WebhookSender(LOCAL)
            r = await slack.send(
                sender, f"http://127.0.0.1:{port}/T/B/X", [n, event], delivery_id="s"
            )
            await sender.aclose()
            return r

    assert asyncio.run(main()).delivered
    headers, body = got[0]
    assert SIGNATURE_HEADER not in headers and headers["Idempotency-Key"] == "s"
    assert body["text"] == "cpwatch digest: 2 notifications"
    texts = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    assert "[FIRING] acme: rule lvl crossed down $1,000,000,000" in texts[0]
    assert "&lt;b&gt;Law&lt;/b&gt; &amp; order" in texts[1] and "<https://x.org/a|" in texts[1]


def test_slack_digest_respects_block_limit() -> None:
    events = [{"id": str(i), "title": f"t{i}"} for i in range(200)]
    body = slack.payload(events)
    assert len(body["blocks"]) <= slack.MAX_BLOCKS
    assert body["blocks"][-1]["elements"][0]["text"].endswith("more")
    assert slack.event_payload(events[0])["text"] == "[EVENT] t0"


def test_endpoint_of() -> None:
    assert endpoint_of("https://Hooks.Example.org/x") == "hooks.example.org:443"
    assert endpoint_of("http://127.0.0.1:8080/x") == "127.0.0.1:8080"


@given(st.binary(min_size=1, max_size=64), st.integers(0, 2**40), st.binary(max_size=2048))
def test_signature_round_trip(secret: bytes, ts: int, body: bytes) -> None:
    header = sign(secret, ts, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(secret, str(ts), body, header, now=ts + 299)
    assert not verify_signature(secret, ts, body + b"x", header, now=ts)
    assert not verify_signature(secret + b"x", ts, body, header, now=ts)
    assert not verify_signature(secret, ts + 1, body, header, now=ts)
    assert not verify_signature(secret, ts, body, header, now=ts + 301)  # stale: replay refused


def test_verify_rejects_garbage() -> None:
    assert not verify_signature("k", "not-a-number", b"", "sha256=00")
    assert not verify_signature("k", 1, b"", "", now=1)
