from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from aiohttp import web

from notify.delivery import (
    Attempt,
    AttemptHook,
    Delivery,
    DeliveryResult,
    DispatchConfig,
    Dispatcher,
    RetryPolicy,
    delivery_id_for,
    message_body,
    summarize,
    with_retries,
)
from notify.lifecycle import Notification
from notify.webhook import WebhookConfig, WebhookSender, endpoint_of
from streams.alerts import Alert


class MaxJitter(random.Random):  # noqa: S311 - test double
    """Full jitter pinned to its ceiling: backoff delays become exact, so ordering is certain."""

    def uniform(self, a: float, b: float) -> float:
        return b


@asynccontextmanager
async def healthy_receiver(hits: list[str]) -> AsyncIterator[int]:
    async def ok(request: web.Request) -> web.Response:
        hits.append(request.headers["Idempotency-Key"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@asynccontextmanager
async def silent_receiver() -> AsyncIterator[int]:
    """Accepts connections and never answers (until the client hangs up)."""

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def webhook(sender: WebhookSender, url: str, did: str) -> Delivery:
    async def send(hook: AttemptHook) -> DeliveryResult:
        return await sender.send(
            url, {"id": did}, delivery_id=did, secret="k" * 16, on_attempt=hook
        )

    return Delivery(did, endpoint_of(url), send)


def test_dead_endpoint_does_not_delay_a_healthy_one_in_the_same_batch() -> None:
    finished: list[str] = []
    dead_letters: list[str] = []
    attempts: list[tuple[str, int]] = []
    hits: list[str] = []

    async def on_result(d: Delivery, r: DeliveryResult) -> None:
        finished.append(d.id)

    async def on_dead(d: Delivery, r: DeliveryResult) -> None:
        dead_letters.append(d.id)

    async def main() -> list[DeliveryResult]:
        # Dead deliveries retry for 0.05 + 0.1 + 0.2 s each, one at a time (per_endpoint=1).
        policy = RetryPolicy(max_attempts=4, base_s=0.05, cap_s=1.0)
        config = WebhookConfig(retry=policy, allowlist=("127.0.0.1",))
        sender = WebhookSender(config, rng=MaxJitter())
        dispatcher = Dispatcher(
            DispatchConfig(per_endpoint=1, delivery_timeout_s=30),
            on_attempt=lambda d, a: attempts.append((d.id, a.n)),
            on_result=on_result,
            on_dead=on_dead,
        )
        dead = f"http://127.0.0.1:{closed_port()}/hook"
        async with healthy_receiver(hits) as port:
            batch = [
                webhook(sender, dead, "dead-1"),
                webhook(sender, dead, "dead-2"),
                webhook(sender, f"http://127.0.0.1:{port}/hook", "healthy"),
            ]
            results = await dispatcher.dispatch(batch)
        await sender.aclose()
        return results

    results = asyncio.run(main())
    assert [r.delivery_id for r in results] == ["dead-1", "dead-2", "healthy"]  # input order
    assert results[2].delivered and len(results[2].attempts) == 1 and hits == ["healthy"]
    assert [len(r.attempts) for r in results[:2]] == [4, 4]
    assert finished[0] == "healthy"  # done before even the first dead delivery gave up
    assert sorted(dead_letters) == ["dead-1", "dead-2"]
    assert len(attempts) == 9 and ("healthy", 1) in attempts


def test_delivery_timeout_dead_letters_the_slow_one_only() -> None:
    dead_letters: list[DeliveryResult] = []

    async def on_dead(d: Delivery, r: DeliveryResult) -> None:
        dead_letters.append(r)

    async def main() -> list[DeliveryResult]:
        config = WebhookConfig(
            read_timeout_s=30, retry=RetryPolicy(max_attempts=1), allowlist=("127.0.0.1",)
        )
        sender = WebhookSender(config)
        dispatcher = Dispatcher(DispatchConfig(delivery_timeout_s=0.3), on_dead=on_dead)
        hits: list[str] = []
        async with silent_receiver() as slow, healthy_receiver(hits) as fast:
            results = await dispatcher.dispatch(
                [
                    webhook(sender, f"http://127.0.0.1:{slow}/", "slow"),
                    webhook(sender, f"http://127.0.0.1:{fast}/", "fast"),
                ]
            )
        await sender.aclose()
        return results

    slow, fast = asyncio.run(main())
    assert fast.delivered
    assert not slow.delivered and slow.last_error == "timed out after 0.3s"
    assert [r.delivery_id for r in dead_letters] == ["slow"]


def test_crashing_sender_is_recorded_not_raised() -> None:
    async def boom(hook: AttemptHook) -> DeliveryResult:
        raise RuntimeError("bug")

    async def fine(hook: AttemptHook) -> DeliveryResult:
        return DeliveryResult("ok", True, [Attempt(1, 200, 1.0)])

    async def main() -> list[DeliveryResult]:
        return await Dispatcher().dispatch([Delivery("b", "e", boom), Delivery("ok", "e", fine)])

    bad, good = asyncio.run(main())
    assert not bad.delivered and "crashed: RuntimeError('bug')" in (bad.last_error or "")
    assert good.delivered


def test_submit_applies_back_pressure_at_max_pending() -> None:
    gate = asyncio.Event()
    started: list[str] = []

    def gated(name: str) -> Delivery:
        async def send(hook: AttemptHook) -> DeliveryResult:
            started.append(name)
            await gate.wait()
            return DeliveryResult(name, True)

        return Delivery(name, name, send)

    async def main() -> None:
        dispatcher = Dispatcher(DispatchConfig(max_pending=1))
        await dispatcher.submit(gated("a"))
        second = asyncio.create_task(dispatcher.submit(gated("b")))
        for _ in range(5):
            await asyncio.sleep(0)
        assert started == ["a"] and not second.done()  # b waits for a free slot
        gate.set()
        await (await second)
        await dispatcher.drain()
        assert started == ["a", "b"]

    asyncio.run(main())


def test_with_retries_stops_on_final_errors_and_bounds_delays() -> None:
    delays: list[float] = []
    outcomes = iter([(None, True), (503, True), (400, False), (200, False)])

    async def attempt(n: int) -> tuple[Attempt, float | None]:
        status, retryable = next(outcomes)
        return Attempt(n, status, 0.0, "err", retryable=retryable), None

    async def sleep(s: float) -> None:
        delays.append(s)

    policy = RetryPolicy(max_attempts=10, base_s=1.0, cap_s=1.5)
    result = asyncio.run(with_retries("x", attempt, policy, sleep=sleep, rng=MaxJitter()))
    assert not result.delivered and [a.status for a in result.attempts] == [None, 503, 400]
    assert delays == [1.0, 1.5]  # base * 2**(n-1), capped


def test_message_helpers() -> None:
    ts = datetime(2024, 3, 5, tzinfo=UTC)
    alert = Alert("dd", "acme", ts, "down", 9e8, 1e9, 6e4, 15e3)
    n = Notification("sub", "resolved", alert, "inc", ts)
    event = {"id": "e1", "title": "Ban", "severity": 0.8, "text": "long body not sent"}
    body = message_body("d", "sub", [n, event])
    assert [i["type"] for i in body["items"]] == ["alert", "event"]
    assert body["items"][0]["alert"]["fingerprint"] == alert.fingerprint
    assert "text" not in body["items"][1]
    assert summarize(n).title.startswith("[RESOLVED] acme")
    assert ("severity", "0.8") in summarize(event).facts
    assert delivery_id_for("sub", [n, event]) == delivery_id_for("sub", [n, event])
    assert delivery_id_for("sub", [n]) != delivery_id_for("other", [n])
