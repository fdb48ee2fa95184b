"""``deliveries`` → webhook / email / Slack, at least once; every attempt recorded in ES.

The topic is read with a plain aiokafka consumer group (``runtime.consumers``), not a Faust
agent: Faust acks a message as soon as its agent moves on (or raises), and a delivery moves on
long before it ends. Each record is looked up against the subscription it names (by id, kept
a few seconds, with Elasticsearch outages waited out) and handed to the ``Dispatcher``,
which runs it as its own task with a concurrency limit per endpoint, so a slow or dead
endpoint delays only its own deliveries.

A record's offset becomes committable only when its delivery has a final outcome: delivered,
or dead-lettered (retries exhausted, refused, timed out, malformed, subscription gone) with
Kafka's acknowledgement of the dead letter. Commits follow ``OffsetTracker``: per partition,
the lowest offset still in flight. A crash or kill replays exactly the unfinished records
(and maybe a few finished above them); the delivery id, the ``Idempotency-Key``, comes from the
record, so receivers dedupe replays. At shutdown the agent waits ``DRAIN_S`` for deliveries in
flight, commits what finished and leaves the rest uncommitted: a delivery that fails because
the worker is stopping is never dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import faust
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.deadletters import letter
from cpwatch.settings import Settings
from notify.delivery import Attempt, Delivery, DeliveryResult, DispatchConfig, Dispatcher
from notify.es_retry import retry_es
from notify.matcher import SubscriptionLookup
from notify.offsets import OffsetTracker
from notify.senders import Senders, attempt_doc, items_from_message
from notify.subscriptions import Subscription
from runtime.consumers import IDLE_POLL_MS, group_consumer, pace_fetches
from runtime.elasticsearch import BulkWriter, async_client
from runtime.faust_app import Topics

log = logging.getLogger(__name__)

STAGE = "deliver"
ATTEMPT_FLUSH_S = 0.5
BATCH = 500
COMMIT_S = 0.5
DRAIN_S = 5.0
# Records read but not committable (behind one slow delivery): reading stops beyond this.
MAX_WINDOW = 5_000
MAX_POLL_INTERVAL_MS = 24 * 3600 * 1000  # waiting out a full dispatcher is back pressure
DLQ_RETRY_S = 2.0


class _Malformed(ValueError):
    pass


def parse(raw: bytes) -> tuple[str, str, list[Any], dict[str, Any]]:
    """(delivery id, subscription id, items, message) of one ``deliveries`` record."""
    try:
        msg = json.loads(raw)
        delivery_id, sub_id = str(msg["id"]), str(msg["subscription"])
        items = items_from_message(msg["items"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _Malformed(f"malformed delivery: {exc!r}") from None
    if not items:
        raise _Malformed("malformed delivery: no items")
    return delivery_id, sub_id, items, msg


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    es = async_client(settings)
    lookup = SubscriptionLookup(es, settings)
    senders = Senders.from_settings(settings)
    attempts_index = settings.index("delivery-attempts")
    dlq = topics[t.DEAD_LETTER]
    meta: dict[str, dict[str, str]] = {}  # delivery id -> subscription, channel
    pending_docs: list[dict[str, Any]] = []
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    outcomes: set[asyncio.Task[None]] = set()
    progress = asyncio.Event()
    state = {"stopping": False}

    async def rejected(action: dict[str, Any], reason: str) -> None:
        # A delivery-attempt document Elasticsearch refused (its delivery is already done).
        rec = letter("sink-es", reason, json.dumps(action.get("_source", {}), default=str))
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

    dispatcher = Dispatcher(
        DispatchConfig(
            per_endpoint=settings.delivery_per_endpoint,
            delivery_timeout_s=settings.delivery_timeout_s,
        ),
        on_attempt=on_attempt,
    )

    async def dead_letter(reason: str, tp: TopicPartition, offset: int, raw: bytes) -> None:
        """Returns once Kafka acknowledged the dead letter; retries until it does."""
        rec = letter(STAGE, reason, raw, topic=tp.topic, partition=tp.partition, offset=offset)
        while True:
            try:
                await (await dlq.send(key=STAGE.encode(), value=rec.to_bytes()))
                break
            except Exception as exc:  # noqa: BLE001 - Kafka down: the record stays uncommitted
                log.warning("dead letter for %s@%d not sent (%r); retrying", tp, offset, exc)
                await asyncio.sleep(DLQ_RETRY_S)

    async def subscription(sub_id: str) -> Subscription | None:
        # By id, not the whole set: Elasticsearch outages are waited out.
        return await retry_es(lambda: lookup.get(sub_id), "deliver: subscriptions")

    async def settle(tp: TopicPartition, offset: int, raw: bytes) -> None:
        """Deliver one record to its final outcome, then mark its offset finished."""
        try:
            delivery_id, sub_id, items, msg = parse(raw)
            sub = await subscription(sub_id)
            if sub is None:
                raise _Malformed(f"subscription {sub_id} no longer exists")
            try:
                delivery = senders.delivery(sub, delivery_id, items, settings)
            except Exception as exc:  # noqa: BLE001 - e.g. a URL httpx cannot encode
                raise _Malformed(f"undeliverable to {sub.channel.type}: {exc!r}") from None
            meta[delivery_id] = {"subscription": sub_id, "channel": sub.channel.type}
            result = await (await dispatcher.submit(delivery))
            m = meta.pop(delivery_id, {})
            channel = m.get("channel", "unknown")
            if result.delivered:
                metrics.DELIVERIES.labels(channel, "delivered").inc()
                metrics.observe_end_to_end(STAGE, _event_time(msg))
            elif state["stopping"]:
                return  # failed because we are stopping: leave it uncommitted, it replays
            else:
                metrics.DELIVERIES.labels(channel, "dead").inc()
                await dead_letter(_reason(delivery, result), tp, offset, raw)
        except _Malformed as exc:
            await dead_letter(str(exc), tp, offset, raw)
        except Exception as exc:  # noqa: BLE001 - a bug or a refused lookup: never a stuck offset
            log.exception("deliver: %s@%d failed", tp, offset)
            await dead_letter(f"delivery failed: {exc!r}", tp, offset, raw)
        tracker.finish(tp, offset)
        progress.set()

    async def commit(consumer: Any, only: set[TopicPartition] | None = None) -> None:
        assigned = consumer.assignment()
        offsets = {
            tp: off
            for tp, off in tracker.committable().items()
            if tp in assigned and (only is None or tp in only)
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
            tracker.committed(offsets)
        except KafkaError as exc:  # rebalance or broker down: the next commit catches up
            log.info("deliver: commit of %s skipped (%r)", offsets, exc)

    class Revoked(ConsumerRebalanceListener):  # type: ignore[misc]
        def __init__(self, consumer: Any) -> None:
            self.consumer = consumer

        async def on_partitions_revoked(self, revoked: Any) -> None:
            await commit(self.consumer, set(revoked))
            tracker.forget(revoked)  # their unfinished records replay at the next owner

        async def on_partitions_assigned(self, assigned: Any) -> None:
            pass

    async def committer(consumer: Any) -> None:
        while True:
            await asyncio.sleep(COMMIT_S)
            await commit(consumer)

    def spawn(tp: TopicPartition, offset: int, raw: bytes) -> None:
        tracker.start(tp, offset)
        task = asyncio.create_task(settle(tp, offset, raw), name=f"settle-{tp.partition}-{offset}")
        outcomes.add(task)
        task.add_done_callback(outcomes.discard)

    @app.task
    async def deliver() -> None:
        consumer = group_consumer(
            settings, t.DELIVERIES, STAGE, max_poll_interval_ms=MAX_POLL_INTERVAL_MS
        )
        consumer.subscribe([settings.topic(t.DELIVERIES)], listener=Revoked(consumer))
        await consumer.start()
        commits = asyncio.create_task(committer(consumer))
        try:
            while not state["stopping"]:
                while (
                    tracker.window() > MAX_WINDOW or len(outcomes) > dispatcher.config.max_pending
                ):
                    progress.clear()
                    await progress.wait()
                polled = await consumer.getmany(timeout_ms=IDLE_POLL_MS, max_records=BATCH)
                pace_fetches(consumer, idle=not polled)
                for tp, msgs in polled.items():
                    metrics.count_in(STAGE, t.DELIVERIES, len(msgs))
                    for m in msgs:
                        spawn(tp, m.offset, m.value or b"")
        finally:
            state["stopping"] = True
            commits.cancel()
            if outcomes:
                await asyncio.wait(set(outcomes), timeout=DRAIN_S)
            await commit(consumer)
            await consumer.stop()

    @app.timer(interval=ATTEMPT_FLUSH_S)
    async def write_attempts() -> None:
        if not pending_docs:
            return
        docs = pending_docs[:]
        del pending_docs[: len(docs)]
        await writer.write([{"_index": attempts_index, "_id": d["id"], "_source": d} for d in docs])

    @app.on_before_shutdown.connect
    def _close(app: faust.App, **_: Any) -> None:
        state["stopping"] = True  # from here a failed delivery stays uncommitted, never dead

        async def close() -> None:
            if outcomes:
                await asyncio.wait(set(outcomes), timeout=DRAIN_S)
            await senders.aclose()
            await es.close()

        app.loop.create_task(close())


def _reason(delivery: Delivery, result: DeliveryResult) -> str:
    return (
        f"undeliverable after {len(result.attempts)} attempt(s) to "
        f"{delivery.endpoint}: {result.last_error}"
    )


def _event_time(msg: dict[str, Any]) -> str:
    """Oldest item's time: an article's fetched_at, or when the alert notification was made."""
    return min(
        (str(v) for i in msg["items"] if (v := i.get("fetched_at") or i.get("at"))), default=""
    )
