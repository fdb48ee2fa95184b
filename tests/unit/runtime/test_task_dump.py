"""The SIGUSR2 task dump follows a task's awaits down to the innermost coroutine."""

from __future__ import annotations

import asyncio

from runtime.task_dump import dump_tasks


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
