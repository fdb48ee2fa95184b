"""The SIGUSR2 task dump follows a task's awaits down to the innermost coroutine."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import TopicPartition
from aiokafka.consumer.subscription_state import SubscriptionState

from runtime.task_dump import _aiokafka_view, dump_tasks


async def innermost(gate: asyncio.Event) -> None:
    await gate.wait()


async def batches(gate: asyncio.Event):  # noqa: ANN201 - an async generator, as Faust's streams
    await innermost(gate)
    yield 1


async def agent(gate: asyncio.Event) -> None:
    async for _ in batches(gate):
        pass


def test_dump_names_every_await_level() -> None:
    async def scenario() -> str:
        gate = asyncio.Event()
        task = asyncio.create_task(agent(gate), name="stalled-agent")
        await asyncio.sleep(0)  # the task runs until it waits on the gate
        dump = dump_tasks(asyncio.get_running_loop())
        gate.set()
        await task
        return dump

    line = next(x for x in asyncio.run(scenario()).splitlines() if "stalled-agent" in x)
    assert [f in line for f in ("agent", "batches", "innermost", "wait")] == [True] * 4
    assert line.index(" agent") < line.index("batches") < line.index("innermost")


def test_consumer_view_shows_aiokafkas_positions_and_pauses() -> None:
    """What found the lost news records: aiokafka's own position at a partition's end while
    Faust had read nothing there (runtime/faust_consumer.py)."""

    async def view() -> str:
        news = [TopicPartition("t-news", p) for p in range(3)]
        sub = SubscriptionState()
        sub.assign_from_user({*news, TopicPartition("t-news-positions-changelog", 0)})
        sub.seek(news[0], 5)
        sub.seek(news[1], 2)
        sub.pause(news[1])
        consumer = SimpleNamespace(
            _subscription=sub, _fetcher=SimpleNamespace(_records={news[0]: object()})
        )
        return _aiokafka_view(SimpleNamespace(_thread=SimpleNamespace(_consumer=consumer)))

    assert asyncio.run(view()) == (
        "t-news/0=5 records, t-news/1=2 paused, t-news/2=reset:AWAITING_RESET"
    )
    assert _aiokafka_view(SimpleNamespace()).startswith("unavailable")
