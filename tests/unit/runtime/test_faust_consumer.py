"""The app's consumer asks aiokafka for the partitions active when Faust asks, not for Faust's
live set, which recovery may empty while aiokafka waits (runtime/faust_consumer.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from cpwatch.settings import Settings
from runtime.faust_app import create_app
from runtime.faust_consumer import Consumer

NEWS, CHANGELOG = TP("news", 0), TP("positions-changelog", 0)


@pytest.mark.parametrize(
    ("consumer_cls", "asked"),
    [
        (Consumer, {NEWS, CHANGELOG}),
        # What the subclass is for: Faust's own hands over the live set, which aiokafka then
        # sees emptied, and aiokafka reads an empty set as every partition.
        (faust_aiokafka.Consumer, set()),
    ],
)
def test_aiokafka_sees_the_partitions_active_when_faust_asked(
    consumer_cls: type[faust_aiokafka.Consumer], asked: set[TP]
) -> None:
    live = {NEWS, CHANGELOG}
    seen: list[Any] = []

    class Thread:
        async def getmany(self, partitions: set[TP] | None, timeout: float) -> dict[TP, Any]:
            await asyncio.sleep(0)
            live.clear()  # meanwhile recovery pauses the changelogs, streams not resumed yet
            seen.append(set(partitions or ()))
            return {}

    fake = SimpleNamespace(_thread=Thread())
    asyncio.run(consumer_cls._getmany(fake, live, 1.0))  # type: ignore[arg-type]
    assert seen == [asked]


def test_a_client_only_question_stays_every_partition() -> None:
    seen: list[Any] = []

    class Thread:
        async def getmany(self, partitions: set[TP] | None, timeout: float) -> dict[TP, Any]:
            seen.append(partitions)
            return {}

    asyncio.run(Consumer._getmany(SimpleNamespace(_thread=Thread()), None, 1.0))  # type: ignore[arg-type]
    assert seen == [None]


def test_the_app_uses_it(tmp_path: Path) -> None:
    app, _ = create_app(Settings(home=tmp_path))
    assert type(app.consumer) is Consumer


def test_the_livelock_check_visits_every_partition_until_stopped() -> None:
    tps = [TP("news", p) for p in range(4)]
    visited: list[TP] = []

    class Fake:
        should_stop = False

        def assignment(self) -> list[TP]:
            return tps

        def verify_event_path(self, now: float, tp: TP) -> None:
            visited.append(tp)
            self.should_stop = tp.partition == 2  # stopping mid-way ends the round

    asyncio.run(Consumer.verify_all_partitions_active(Fake()))  # type: ignore[arg-type]
    assert visited == tps[:3]
