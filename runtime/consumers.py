"""Plain aiokafka consumer groups of the worker (sinks, route-ticks): one place for how they
are named and configured; each commits by hand after its output was acknowledged."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError

from cpwatch.settings import Settings

log = logging.getLogger(__name__)

SESSION_TIMEOUT_MS = 10_000  # as the Faust worker's (runtime/faust_app.py)
FETCH_WAIT_MS = 500  # aiokafka's default broker wait on a fetch that finds no data
# Once a poll waited its full time for nothing, no partition has records waiting, so one fetch
# asks for all of them and the broker answers as soon as any arrives: a long wait adds no
# latency there. While records are being handled, the other partitions' fetch holds the
# connection for its wait and the busy partition's next fetch queues behind it, so the wait
# goes back to short as soon as records come. Each idle fetch cost the worker about 1 ms of CPU.
IDLE_FETCH_WAIT_MS = 1_000
# How long a poll of route-ticks, a sink or the deliveries with nothing fetched waits. Records are
# returned as soon as a fetch brings any, so this adds no latency; it only sets how often an
# idle loop wakes up (the alerts sink polled every 20 ms, 50 wake-ups a second for nothing).
IDLE_POLL_MS = 1_000
# How often aiokafka's background fetch routine wakes when nothing happened (its default 200 ms).
# It is woken anyway by a fetch's answer, a poll that took records, a seek, a resume and a
# rebalance, so the timeout is only a fallback: at 200 ms each long-lived consumer of a worker
# woke 5 times a second while idle, about a quarter of an idle worker's event-loop time.
BACKGROUND_WAKE_MS = 1_000


def group_id(settings: Settings, group: str) -> str:
    """The consumer group ``<prefix><app id>-<group>`` of one of the worker's plain consumers."""
    return f"{settings.topic_prefix}{settings.faust_app_id}-{group}"


def group_consumer(settings: Settings, topic: str, group: str, **extra: Any) -> AIOKafkaConsumer:
    """A consumer of the logical ``topic`` in group ``group_id(settings, group)``."""
    s = settings
    return AIOKafkaConsumer(
        s.topic(topic),
        group_id=group_id(s, group),
        client_id=f"{s.faust_app_id}-{group}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        consumer_timeout_ms=BACKGROUND_WAKE_MS,
        **extra,
        **s.aiokafka_client_kwargs(),
    )


async def commit_polled(
    consumer: AIOKafkaConsumer, polled: dict[Any, list[Any]], name: str
) -> None:
    """Commit exactly what one ``getmany`` returned, once its output was acknowledged. If the
    partitions moved meanwhile, the commit is refused and their new owner replays the batch;
    deterministic ids and the treasury's event-time check make that replay harmless."""
    offsets = {tp: msgs[-1].offset + 1 for tp, msgs in polled.items() if msgs}
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
        log.info("%s: commit skipped after a rebalance (%r); batch replays", name, exc)


def pace_fetches(consumer: AIOKafkaConsumer, *, idle: bool, busy_ms: int = FETCH_WAIT_MS) -> None:
    """Set the broker wait of the consumer's next fetch requests: ``idle`` after a poll that
    waited its full time for nothing, else ``busy_ms``. aiokafka has no setter; its fetcher
    reads this attribute for every request it builds (tests/unit/runtime pin it)."""
    consumer._fetcher._fetch_max_wait_ms = IDLE_FETCH_WAIT_MS if idle else busy_ms  # noqa: SLF001
