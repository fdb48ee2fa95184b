"""route-ticks on the real broker: a burst's last batch is committed as soon as Kafka has
acknowledged what it routed, not after the next poll's idle wait."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from kafka.admin import KafkaAdminClient

from cpwatch import topics as t
from cpwatch.records import PriceTick
from cpwatch.settings import Settings
from producers.kafka import Producer
from runtime.consumers import group_id
from streams import tick_router
from tests.unit.streams.test_tick_router import Topic

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, tzinfo=UTC)
DEADLINE_S = 90.0


def _committed(admin: KafkaAdminClient, group: str) -> int:
    offsets = admin.list_group_offsets({group: None}).get(group, {})
    return sum(max(o.offset, 0) for o in offsets.values())


def test_last_batch_commits_without_waiting_for_the_idle_poll(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = kafka_settings
    # An idle poll longer than the deadline: the commit can only come from the batch itself.
    monkeypatch.setattr(tick_router, "IDLE_POLL_MS", int(DEADLINE_S * 1000) * 10)
    monkeypatch.setattr(tick_router, "QUIET_POLL_MS", int(DEADLINE_S * 1000) * 10)
    n = 500
    with Producer(s) as p:
        for i in range(n):
            tick = PriceTick(
                venue=f"v{i % 5}", symbol="BTC-USD", price=60_000.0 + i, ts=T0 + timedelta(i)
            )
            p.send(t.PRICE_TICKS, tick.key, tick.to_bytes())
    by_symbol, dlq = Topic(), Topic()
    admin = KafkaAdminClient(**s.kafka_client_kwargs())
    group = group_id(s, tick_router.STAGE)

    async def scenario() -> int:
        task = asyncio.create_task(tick_router.run(s, by_symbol, dlq))  # type: ignore[arg-type]
        try:
            deadline = time.monotonic() + DEADLINE_S
            while (done := await asyncio.to_thread(_committed, admin, group)) < n:
                if task.done():
                    task.result()  # raises what stopped the router
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.25)
            return done
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        committed = asyncio.run(scenario())
    finally:
        admin.close()
    assert committed == n, f"{committed} of {n} ticks committed within {DEADLINE_S}s"
    assert by_symbol.sent and {key for key, _ in by_symbol.sent} == {b"BTC-USD"}
    assert not dlq.sent
