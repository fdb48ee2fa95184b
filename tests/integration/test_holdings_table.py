"""HoldingsTable on the real broker: each catch-up reads every partition to the end offsets of
that moment, keeps rows in read order, skips malformed ones, and costs no wait when current."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from cpwatch import topics as t
from cpwatch.records import HoldingUpdate
from cpwatch.settings import Settings
from producers.kafka import Producer
from streams.holdings_table import HoldingsTable

pytestmark = pytest.mark.integration

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def rows(holders: int, first_day: int) -> list[HoldingUpdate]:
    return [
        HoldingUpdate(holder=f"H{i}", kind="company", btc=100 + i, as_of=T0 + timedelta(first_day))
        for i in range(holders)
    ]


def send(s: Settings, items: list[HoldingUpdate], garbage: int = 0) -> None:
    with Producer(s) as p:
        for h in items:
            p.send(t.HOLDINGS, h.key, h)
        for i in range(garbage):
            p.send(t.HOLDINGS, f"bad{i}", b'{"holder": ""}')


def test_catch_up_reads_to_the_end_of_every_partition(kafka_settings: Settings) -> None:
    s = kafka_settings
    first, second = rows(40, 0), rows(25, 10)

    async def scenario() -> None:
        table = HoldingsTable(s)
        try:
            assert await table.catch_up() == 0  # empty topic: nothing, and no error
            send(s, first, garbage=3)
            assert await table.catch_up() == len(first)
            assert {h.key for h in table.rows} == {h.key for h in first}
            assert await table.catch_up() == 0  # current: nothing new
            send(s, second)
            assert await table.catch_up() == len(second)
            assert table.rows[len(first) :] and {h.key for h in table.rows[len(first) :]} == {
                h.key for h in second
            }
        finally:
            await table.stop()

    asyncio.run(scenario())
