"""The worker's plain consumers lengthen the broker's wait on fetches while idle: checked on
aiokafka's own fetcher, in the request it would send next (runtime/consumers.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.subscription_state import SubscriptionState

from cpwatch.settings import Settings
from runtime.consumers import (
    BACKGROUND_WAKE_MS,
    FETCH_WAIT_MS,
    IDLE_FETCH_WAIT_MS,
    group_consumer,
    pace_fetches,
)

TP = TopicPartition("price-ticks", 0)


def next_fetch_waits(steps: list[dict[str, Any]]) -> list[int]:
    """The broker wait of the fetch request aiokafka builds after each ``pace_fetches``."""

    async def run() -> list[int]:
        cluster = SimpleNamespace(leader_for_partition=lambda tp: 0, broker_metadata=lambda n: 0)
        client = SimpleNamespace(
            _loop=asyncio.get_running_loop(), _metadata_max_age_ms=300_000, cluster=cluster
        )
        subscriptions = SubscriptionState()
        subscriptions.assign_from_user({TP})
        subscriptions.seek(TP, 0)
        fetcher = Fetcher(client, subscriptions)
        fetcher._fetch_task.cancel()  # requests are only built here, never sent
        waits = []
        for step in steps:
            pace_fetches(SimpleNamespace(_fetcher=fetcher), **step)
            requests = fetcher._get_actions_per_node(subscriptions.subscription.assignment)[0]
            waits += [request._max_wait_ms for _, request in requests]
        return waits

    return asyncio.run(run())


def test_idle_fetches_wait_long_and_busy_ones_short_again() -> None:
    steps: list[dict[str, Any]] = [
        {"idle": True},
        {"idle": False},
        {"idle": True},
        {"idle": False, "busy_ms": 100},
    ]
    waits = next_fetch_waits(steps)
    assert waits == [IDLE_FETCH_WAIT_MS, FETCH_WAIT_MS, IDLE_FETCH_WAIT_MS, 100]


def test_group_consumers_wake_their_fetch_routine_once_a_second_while_idle() -> None:
    async def timeouts() -> list[float]:
        settings = Settings()
        return [
            group_consumer(settings, topic, "sink")._consumer_timeout
            for topic in ("price-ticks", "alerts")
        ]

    assert asyncio.run(timeouts()) == [BACKGROUND_WAKE_MS / 1000] * 2
    assert BACKGROUND_WAKE_MS > 200  # aiokafka's default, 5 wake-ups a second per consumer
