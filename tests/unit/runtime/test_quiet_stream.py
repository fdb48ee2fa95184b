"""QuietStream over a real Faust channel (no broker is contacted): an idle batching loop stops
waking on a timer, and every value still comes out, in order, in bounded batches."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust
import pytest
from mode.utils.times import Seconds

from runtime.quiet_stream import QuietStream

WITHIN = 0.02


class Counted(QuietStream):
    waits = 0

    async def wait_for_stopped(self, *coros: Any, timeout: Seconds | None = None) -> bool:
        type(self).waits += 1
        return await super().wait_for_stopped(*coros, timeout=timeout)


class CountedFaust(faust.Stream[Any]):
    waits = 0

    async def wait_for_stopped(self, *coros: Any, timeout: Seconds | None = None) -> bool:
        type(self).waits += 1
        if timeout is None:
            return bool(await super().wait_for_stopped(*coros))
        return bool(await super().wait_for_stopped(*coros, timeout=timeout))


async def _until(check: Callable[[], bool], deadline_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not check():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.005)


def _run(
    stream_cls: type[faust.Stream[Any]],
    scenario: Callable[[faust.ChannelT[Any], list[list[Any]]], Awaitable[None]],
    *,
    max_: int = 100,
    noack: bool = False,
) -> list[list[Any]]:
    async def main() -> list[list[Any]]:
        app = faust.App("t-quiet", broker="kafka://127.0.0.1:1", Stream=stream_cls)
        app.flow_control.resume()  # the worker does this on start
        channel = app.channel(maxsize=10_000)
        stream = cast(QuietStream, channel.stream())  # the app's Stream class
        batches: list[list[Any]] = []

        async def agent() -> None:
            async with stream:
                if noack:
                    async for values in stream.noack_take(max_, within=WITHIN):
                        batches.append([e.value for e in values])
                else:
                    async for events in stream.take_events(max_, within=WITHIN):
                        batches.append([e.value for e in events])

        task = asyncio.ensure_future(agent())
        try:
            await scenario(channel, batches)
        finally:
            await stream.stop()
            await asyncio.wait_for(task, 30)  # stopping the stream ends the loop
        return batches

    return asyncio.run(main())


async def _idle(channel: faust.ChannelT[Any], batches: list[list[Any]]) -> None:
    await asyncio.sleep(20 * WITHIN)  # what is measured here is the absence of wakes
    await channel.send(value=1)
    await _until(lambda: sum(map(len, batches)) == 1)


def test_an_idle_loop_waits_without_a_timer() -> None:
    Counted.waits = CountedFaust.waits = 0
    assert _run(Counted, _idle) == [[1]]
    assert _run(CountedFaust, _idle) == [[1]]
    # Faust's loop woke about once per WITHIN over the idle stretch. The quiet one waited for
    # the arrival, then once with the timer (nothing came), then again without one.
    assert CountedFaust.waits >= 10
    assert Counted.waits <= 3


@pytest.mark.parametrize("noack", [False, True])
def test_every_value_comes_out_in_order_in_bounded_batches(noack: bool) -> None:
    n = 2_000

    async def burst(channel: faust.ChannelT[Any], batches: list[list[Any]]) -> None:
        for wave in range(4):  # busy spells with idle gaps between them
            for i in range(n // 4):
                await channel.send(value=wave * (n // 4) + i)
            done = (wave + 1) * (n // 4)
            await _until(lambda: sum(map(len, batches)) == done)  # noqa: B023 - awaited here
            await asyncio.sleep(3 * WITHIN)

    batches = _run(QuietStream, burst, max_=64, noack=noack)
    assert [v for b in batches for v in b] == list(range(n))
    assert all(1 <= len(b) <= 64 for b in batches)
    assert max(map(len, batches)) == 64  # under load it still gathers full batches


def test_the_counter_leaves_with_the_loop() -> None:
    async def scenario(channel: faust.ChannelT[Any], batches: list[list[Any]]) -> None:
        await channel.send(value="a")
        await _until(lambda: batches == [["a"]])

    seen: list[QuietStream] = []

    class Kept(QuietStream):
        def _watch(self) -> None:
            seen.append(self)
            super()._watch()

    assert _run(Kept, scenario) == [["a"]]
    (stream,) = seen
    assert stream._arrived is None
    assert stream._count not in stream._processors
