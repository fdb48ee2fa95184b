"""A Faust stream whose batching loops sleep while nothing arrives.

Faust's ``take_events`` and ``noack_take`` wait for a full buffer with the ``within`` timeout,
whether or not anything is buffered: an idle agent wakes every ``within`` seconds (20 times a
second at our 50 ms), and each wake starts and cancels three tasks. With seven batching agents
that was three quarters of an idle worker's event-loop callbacks and about 2 % of a core.

``QuietStream`` counts arrivals while a batching loop runs. Once a whole ``within`` passed with
nothing buffered and nothing arriving, the stream is quiet: the loop waits for the next arrival
without a timer and hands it over as soon as it came, then gathers for up to ``within`` again
as Faust does while arrivals keep coming. A lone event goes out sooner than Faust's timer let
it, and a busy stream batches as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, cast

import faust
from faust.types import EventT
from mode.utils.times import Seconds


class QuietStream(faust.Stream[Any]):
    _arrived: asyncio.Event | None = None
    _arrivals = 0  # events seen by the running batching loop
    _handed = 0  # arrivals when its last timed wait returned
    _quiet = True  # its last timed wait saw nothing arrive

    def _count(self, value: Any) -> Any:
        self._arrivals += 1
        if self._arrived is not None:
            self._arrived.set()
        return value

    def _watch(self) -> None:
        self._arrived = asyncio.Event()
        self._arrivals = self._handed = 0
        self._quiet = True
        self.add_processor(self._count)  # runs before the batching loop's own processor

    def _unwatch(self) -> None:
        self._arrived = None
        if self._count in self._processors:
            self._processors.remove(self._count)

    async def wait_for_stopped(self, *coros: Any, timeout: Seconds | None = None) -> bool:
        arrived = self._arrived
        if arrived is None or timeout is None:  # not a batching loop's timed wait
            return bool(await super().wait_for_stopped(*coros))
        if self._quiet and self._arrivals == self._handed:
            # Wait for an arrival without a timer (no await since the check, so none slips
            # between), then hand it over at once: Faust's timer, running all along, would
            # have ticked 0 to ``within`` later.
            arrived.clear()
            event = cast(Any, arrived)  # mode's annotation names its own Event; any one works
            stopped = bool(await super().wait_for_stopped(event))
            self._quiet = False
        else:
            # Busy: gather for up to ``within``, as Faust does. A whole wait in which nothing
            # came, with nothing buffered before it, means the stream went quiet.
            before = self._arrivals
            stopped = bool(await super().wait_for_stopped(*coros, timeout=timeout))
            self._quiet = self._handed == before == self._arrivals
        # Everything counted so far is in the buffer the loop now hands over (or handed over).
        self._handed = self._arrivals
        return stopped

    async def _counted(self, batches: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """``batches`` (a Faust batching loop, not started yet) with arrivals counted."""
        self._watch()
        try:
            async for batch in batches:
                yield batch
        finally:
            self._unwatch()

    async def take_events(
        self, max_: int, within: Seconds
    ) -> AsyncGenerator[Sequence[EventT[Any]], None]:
        async for batch in self._counted(super().take_events(max_, within)):
            yield batch

    async def noack_take(self, max_: int, within: Seconds) -> AsyncGenerator[Sequence[Any], None]:
        async for batch in self._counted(super().noack_take(max_, within)):
            yield batch
