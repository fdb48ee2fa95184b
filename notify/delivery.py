"""Delivery core shared by the webhook, Slack and email senders, and the ``Dispatcher``.

Every attempt is recorded (``Attempt``); ``with_retries`` retries only what can succeed later,
with capped exponential backoff and full jitter. The ``Dispatcher`` runs many deliveries at
once with a concurrency limit per endpoint and a timeout per delivery, so one slow or dead
endpoint only ever delays its own deliveries. It needs no settings; see ``DispatchConfig``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from cpwatch.records import stable_id, utcnow
from notify.lifecycle import Notification
from streams.alerts import iso_utc, measure

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Attempt:
    n: int
    status: int | None  # HTTP or SMTP reply code; None when no reply came
    latency_ms: float
    error: str | None = None
    at: datetime = field(default_factory=utcnow)
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class DeliveryResult:
    delivery_id: str
    delivered: bool
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def last_error(self) -> str | None:
        return self.attempts[-1].error if self.attempts else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, n: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Full jitter after attempt ``n``: uniform(0, min(cap, base * 2**(n-1)))."""
        ceiling = min(self.cap_s, self.base_s * 2 ** (n - 1))
        jittered = rng.uniform(0, ceiling)
        return min(self.cap_s, max(jittered, retry_after or 0.0))


AttemptHook = Callable[[Attempt], None]
AttemptFn = Callable[[int], Awaitable[tuple[Attempt, float | None]]]  # -> (attempt, retry_after)


async def with_retries(
    delivery_id: str,
    attempt: AttemptFn,
    policy: RetryPolicy,
    *,
    on_attempt: AttemptHook | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> DeliveryResult:
    """Call ``attempt(n)`` until one succeeds, one fails for good, or attempts run out."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    result = DeliveryResult(delivery_id, delivered=False)
    for n in range(1, policy.max_attempts + 1):
        done, retry_after = await attempt(n)
        result.attempts.append(done)
        if on_attempt is not None:
            on_attempt(done)
        if done.ok:
            result.delivered = True
            break
        if not done.retryable or n == policy.max_attempts:
            break
        await sleep(policy.delay(n, rng, retry_after))
    return result


def timed(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


# ---------------------------------------------------------------- what a message says

Item = Notification | dict[str, Any]  # an alert notification, or a policy event document
EVENT_FIELDS = (
    "id",
    "title",
    "url",
    "source",
    "published",
    "categories",
    "countries",
    "orgs",
    "holders",
    "severity",
    "cluster_id",
)
_LABEL = {"firing": "FIRING", "realert": "STILL FIRING", "resolved": "RESOLVED"}


class Summary(NamedTuple):
    title: str
    facts: list[tuple[str, str]]
    link: str | None


def summarize(item: Item) -> Summary:
    """One headline and a few labelled facts, shared by the Slack and email renderers."""
    if isinstance(item, Notification):
        a = item.alert
        head = f"[{_LABEL[item.kind]}] {a.holder}: rule {a.rule}"
        held = [("BTC held", f"{a.btc:,.4f}"), ("at", iso_utc(a.ts)), ("incident", item.incident)]
        if measure(item.rule_type) == "price":  # threshold = average cost per coin
            title = (
                f"{head}: BTC price ${a.price:,.0f} crossed {a.direction} "
                f"the average cost ${a.threshold_usd:,.0f} per BTC"
            )
            facts = [
                ("BTC price", f"${a.price:,.2f}"),
                ("average cost per BTC", f"${a.threshold_usd:,.2f}"),
                ("value", f"${a.value_usd:,.0f}"),
                *held,
            ]
        else:
            title = f"{head} crossed {a.direction} ${a.threshold_usd:,.0f}"  # USD value levels
            facts = [("value", f"${a.value_usd:,.0f}"), ("BTC price", f"${a.price:,.2f}"), *held]
        return Summary(title, facts, None)
    facts = [
        (k, ", ".join(map(str, v)) if isinstance(v, list) else str(v))
        for k in ("categories", "countries", "orgs", "severity", "source", "published")
        if (v := item.get(k)) not in (None, "", [])
    ]
    return Summary(f"[EVENT] {item.get('title', '(untitled)')}", facts, item.get("url"))


def item_dict(item: Item) -> dict[str, Any]:
    if isinstance(item, Notification):
        return {"type": "alert", **item.to_dict()}
    return {"type": "event", **{k: item[k] for k in EVENT_FIELDS if k in item}}


def delivery_id_for(subscription: str, items: list[Item]) -> str:
    """Deterministic id of one message: a replayed digest keeps its Idempotency-Key."""
    keys = [i.delivery_id if isinstance(i, Notification) else str(i.get("id", "")) for i in items]
    return stable_id(subscription, *keys)


def message_body(delivery_id: str, subscription: str, items: list[Item]) -> dict[str, Any]:
    """The JSON a webhook receives: one message per digest, items in arrival order."""
    return {
        "delivery_id": delivery_id,
        "subscription": subscription,
        "sent_at": iso_utc(utcnow()),
        "items": [item_dict(i) for i in items],
    }


# ---------------------------------------------------------------- dispatcher


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    per_endpoint: int = 2  # concurrent deliveries to one endpoint (host:port or SMTP relay)
    max_pending: int = 1_000  # deliveries in flight; ``submit`` waits beyond this
    delivery_timeout_s: float = 120.0  # all attempts and backoff of one delivery


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    endpoint: str
    send: Callable[[AttemptHook], Awaitable[DeliveryResult]]


ResultHook = Callable[[Delivery, DeliveryResult], Awaitable[None]]


class Dispatcher:
    """Runs deliveries as tasks; ``on_result`` sees every outcome, ``on_dead`` the failures
    (retries exhausted, refused, or timed out) for dead-lettering; ``on_attempt`` each try."""

    def __init__(
        self,
        config: DispatchConfig = DispatchConfig(),
        *,
        on_attempt: Callable[[Delivery, Attempt], None] | None = None,
        on_result: ResultHook | None = None,
        on_dead: ResultHook | None = None,
    ) -> None:
        self.config = config
        self._on_attempt, self._on_result, self._on_dead = on_attempt, on_result, on_dead
        self._pending = asyncio.Semaphore(config.max_pending)
        self._endpoints: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(config.per_endpoint)
        )
        self._tasks: set[asyncio.Task[DeliveryResult]] = set()

    async def submit(self, delivery: Delivery) -> asyncio.Task[DeliveryResult]:
        """Start a delivery; waits (back pressure) while ``max_pending`` are in flight."""
        await self._pending.acquire()
        task = asyncio.create_task(self._run(delivery), name=f"delivery-{delivery.id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    async def dispatch(self, deliveries: Iterable[Delivery]) -> list[DeliveryResult]:
        """Send a batch concurrently; results in input order."""
        tasks = [await self.submit(d) for d in deliveries]
        return list(await asyncio.gather(*tasks))

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _done(self, task: asyncio.Task[DeliveryResult]) -> None:
        self._tasks.discard(task)
        self._pending.release()

    async def _run(self, delivery: Delivery) -> DeliveryResult:
        attempts: list[Attempt] = []

        def record(attempt: Attempt) -> None:
            attempts.append(attempt)
            if self._on_attempt is not None:
                self._on_attempt(delivery, attempt)

        # Waiting for the endpoint's slot is outside the timeout: a queue behind a slow
        # endpoint is not that delivery's failure.
        async with self._endpoints[delivery.endpoint]:
            start = time.perf_counter()
            try:
                async with asyncio.timeout(self.config.delivery_timeout_s):
                    result = await delivery.send(record)
            except TimeoutError:
                timeout = f"timed out after {self.config.delivery_timeout_s:g}s"
                record(Attempt(len(attempts) + 1, None, timed(start), timeout))
                result = DeliveryResult(delivery.id, False, attempts)
            except Exception as exc:  # a sender bug must not take the batch down
                log.exception("delivery %s to %s crashed", delivery.id, delivery.endpoint)
                record(Attempt(len(attempts) + 1, None, timed(start), f"crashed: {exc!r}"))
                result = DeliveryResult(delivery.id, False, attempts)
        await self._hook(self._on_result, delivery, result)
        if not result.delivered:
            await self._hook(self._on_dead, delivery, result)
        return result

    async def _hook(self, hook: ResultHook | None, delivery: Delivery, r: DeliveryResult) -> None:
        if hook is None:
            return
        try:
            await hook(delivery, r)
        except Exception:  # bookkeeping failing must not lose the other results
            log.exception("result hook failed for delivery %s", delivery.id)
