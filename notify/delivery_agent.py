"""Faust agent: ``deliveries`` → webhook / email / Slack, every attempt recorded in Elasticsearch.

Each delivery record (``notify.match_agent.delivery_message``) is looked up against
the subscription it names (cached, reloaded on a miss: a new subscription's first message
must not be lost) and handed to the ``Dispatcher``, which runs it as its own task with a
concurrency limit per endpoint: a slow or dead endpoint delays only its own deliveries, and
the agent moves on at once (``submit`` only waits when ``max_pending`` are in flight).
Webhook and Slack sends re-check the URL against the SSRF guard before every attempt
(``WebhookSender``). Every attempt becomes a document in ``<prefix>-delivery-attempts``
(status, latency, error), written in batches through the ``BulkWriter``; a delivery that ends
undelivered (retries exhausted, refused, timed out, or its subscription gone) goes to
``dead-letter`` with the reason.

Offsets are committed once a delivery is submitted, not once it is done: a crash loses the
deliveries in flight (at most ``max_pending``). Receivers dedupe on ``Idempotency-Key``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import faust

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.records import DeadLetter
from cpwatch.settings import Settings
from notify.delivery import (
    Attempt,
    Delivery,
    DeliveryResult,
    DispatchConfig,
    Dispatcher,
)
from notify.matcher import SubscriptionCache
from notify.senders import Senders, attempt_doc, items_from_message
from sinks.elasticsearch import BulkWriter, async_client
from streams.app import Topics
from streams.deadletter import dead_letter

log = logging.getLogger(__name__)

STAGE = "deliver"
ATTEMPT_FLUSH_S = 0.5


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    es = async_client(settings)
    cache = SubscriptionCache(es, settings)
    senders = Senders.from_settings(settings)
    attempts_index = settings.index("delivery-attempts")
    dlq = topics[t.DEAD_LETTER]
    meta: dict[str, dict[str, str]] = {}  # delivery id -> subscription, channel, raw message
    pending_docs: list[dict[str, Any]] = []

    async def rejected(action: dict[str, Any], reason: str) -> None:
        rec = DeadLetter.of("sink-es", reason, json.dumps(action.get("_source", {}), default=str))
        await dlq.send(key=b"sink-es", value=rec.to_bytes())

    writer = BulkWriter(es, on_rejected=rejected)

    def on_attempt(delivery: Delivery, a: Attempt) -> None:
        pending_docs.append(attempt_doc(delivery, meta.get(delivery.id, {}), a))
        channel = meta.get(delivery.id, {}).get("channel", "unknown")
        metrics.DELIVERY_ATTEMPT.labels(channel).observe(a.latency_ms / 1000)
        metrics.DELIVERY_ATTEMPTS.labels(channel, "ok" if a.ok else "error").inc()
        if not a.ok:
            log.info(
                "delivery %s attempt %d to %s: %s", delivery.id, a.n, delivery.endpoint, a.error
            )

    async def on_result(delivery: Delivery, result: DeliveryResult) -> None:
        if result.delivered:
            m = meta.pop(delivery.id, {})
            metrics.DELIVERIES.labels(m.get("channel", "unknown"), "delivered").inc()
            metrics.observe_end_to_end(STAGE, m.get("event_time"))

    async def on_dead(delivery: Delivery, result: DeliveryResult) -> None:
        m = meta.pop(delivery.id, {})
        metrics.DELIVERIES.labels(m.get("channel", "unknown"), "dead").inc()
        metrics.count_dead_lettered(STAGE, t.DELIVERIES)
        reason = (
            f"undeliverable after {len(result.attempts)} attempt(s) to "
            f"{delivery.endpoint}: {result.last_error}"
        )
        rec = DeadLetter.of(STAGE, reason, m.get("raw", ""))
        await dlq.send(key=STAGE.encode(), value=rec.to_bytes())
        log.warning("delivery %s dead-lettered: %s", delivery.id, reason)

    dispatcher = Dispatcher(
        DispatchConfig(
            per_endpoint=settings.delivery_per_endpoint,
            delivery_timeout_s=settings.delivery_timeout_s,
        ),
        on_attempt=on_attempt,
        on_result=on_result,
        on_dead=on_dead,
    )

    @app.agent(topics[t.DELIVERIES], name="deliver", concurrency=1)
    async def deliver(stream: faust.StreamT) -> None:
        async for event in stream.events():
            raw: bytes = event.value
            try:
                msg = json.loads(raw)
                delivery_id, sub_id = str(msg["id"]), str(msg["subscription"])
                items = items_from_message(msg["items"])
                if not items:
                    raise ValueError("delivery without items")
            except (ValueError, KeyError, TypeError) as exc:
                await dead_letter(dlq, STAGE, f"malformed delivery: {exc!r}", event, raw)
                continue
            subs = await cache.get()
            sub = subs.get(sub_id) or (await cache.get(force=True)).get(sub_id)
            if sub is None:
                await dead_letter(dlq, STAGE, f"subscription {sub_id} no longer exists", event, raw)
                continue
            meta[delivery_id] = {
                "subscription": sub_id,
                "channel": sub.channel.type,
                "raw": raw.decode("utf-8", "replace"),
                # oldest item's time: article fetched_at, or when the alert notification was made
                "event_time": min(
                    (str(v) for i in msg["items"] if (v := i.get("fetched_at") or i.get("at"))),
                    default="",
                ),
            }
            await dispatcher.submit(senders.delivery(sub, delivery_id, items, settings))

    @app.timer(interval=ATTEMPT_FLUSH_S)
    async def write_attempts() -> None:
        if not pending_docs:
            return
        docs = pending_docs[:]
        del pending_docs[: len(docs)]
        await writer.write([{"_index": attempts_index, "_id": d["id"], "_source": d} for d in docs])

    @app.on_before_shutdown.connect
    def _close(app: faust.App, **_: Any) -> None:
        async def close() -> None:
            try:
                await asyncio.wait_for(dispatcher.drain(), 5)
            except TimeoutError:
                pass
            await senders.aclose()
            await es.close()

        app.loop.create_task(close())
