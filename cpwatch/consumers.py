"""Plain aiokafka consumer groups of the worker (sinks, route-ticks): one place for how they
are named and configured; each commits by hand after its output was acknowledged."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer

from cpwatch.settings import Settings

SESSION_TIMEOUT_MS = 10_000  # as the Faust worker's (streams/app.py)


def group_consumer(settings: Settings, topic: str, group: str, **extra: Any) -> AIOKafkaConsumer:
    """A consumer of the logical ``topic`` in group ``<prefix><app id>-<group>``."""
    s = settings
    return AIOKafkaConsumer(
        s.topic(topic),
        group_id=f"{s.topic_prefix}{s.faust_app_id}-{group}",
        client_id=f"{s.faust_app_id}-{group}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        **extra,
        **s.kafka_client_kwargs(),
    )
