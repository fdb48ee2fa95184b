"""One shared poller behind every server-sent-event stream of a process.

Each stream used to run its own search every second on the shared thread pool, so N open
dashboards cost N searches a second. ``EventHub`` runs one poll per period whatever the
number of listeners and hands each listener the new events through its own bounded queue.
The poller starts with the first listener and stops with the last. A listener too slow to
drain its queue is told to reconnect (EventSource resumes from Last-Event-ID) instead of
holding memory or delaying the others. At most ``max_clients`` listen at once (429 past it).

Pure asyncio and a ``fetch(since, skip)`` callable: tests drive it with a counting fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, TransportError

Doc = dict[str, Any]
Fetch = Callable[[str | None, set[str]], list[Doc]]
QUEUE_SIZE = 256  # items a listener may fall behind before it is told to reconnect
STALE_S = 60.0  # a listener not reading for this long is dropped (its stream never started)


class TooManyClients(Exception):
    pass


@dataclass(eq=False)
class Listener:
    queue: asyncio.Queue[tuple[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    last_read: float = field(default_factory=time.monotonic)
    overflowed: bool = False

    async def next(self, timeout: float) -> tuple[str, Any] | None:
        """The next item (("doc", doc), ("problem", text) or ("overflow", None)), or None."""
        self.last_read = time.monotonic()
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        finally:
            self.last_read = time.monotonic()

    def offer(self, item: tuple[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # Drop its backlog: all it gets now is the order to reconnect and catch up.
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(("overflow", None))


class EventHub:
    def __init__(self, fetch: Fetch, *, period: float, max_clients: int) -> None:
        self.fetch, self.period, self.max_clients = fetch, period, max_clients
        self.listeners: set[Listener] = set()
        self.polls = 0
        self._since: str | None = None
        self._skip: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self) -> Listener:
        if len(self.listeners) >= self.max_clients:
            raise TooManyClients(f"{self.max_clients} event streams already open")
        listener = Listener()
        self.listeners.add(listener)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        if not self.listeners and self._task is not None:
            self._task.cancel()  # nobody listens: stop polling now
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def poll_once(self) -> None:
        """One search; its new events (in ingestion order) go to every listener."""
        self.polls += 1
        try:
            docs = await asyncio.to_thread(self.fetch, self._since, set(self._skip))
        except (ApiError, TransportError) as exc:
            self._fan_out(("problem", f"elasticsearch: {exc.__class__.__name__}"))
            return
        for doc in docs:
            if doc["ingested_at"] != self._since:
                self._since, self._skip = doc["ingested_at"], set()
            self._skip.add(doc["id"])
            self._fan_out(("doc", doc))

    def _fan_out(self, item: tuple[str, Any]) -> None:
        for listener in list(self.listeners):
            listener.offer(item)

    def _drop_stale(self) -> None:
        cutoff = time.monotonic() - STALE_S
        for listener in [x for x in self.listeners if x.last_read < cutoff]:
            self.listeners.discard(listener)

    async def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while self.listeners:
                await self.poll_once()
                await asyncio.sleep(self.period)
                self._drop_stale()


class Cursor:
    """A stream's position: events ingested after ``since``, or at ``since`` and not yet sent
    (``skip``). Each stream keeps its own, so the shared feed suits streams that started at
    different points."""

    def __init__(self, since: str | None) -> None:
        self.since, self.skip = since, set[str]()

    def admit(self, doc: Doc) -> bool:
        at, doc_id = doc["ingested_at"], doc["id"]
        seen = at == self.since and doc_id in self.skip
        if self.since is not None and (at < self.since or seen):
            return False
        if at != self.since:
            self.since, self.skip = at, set()
        self.skip.add(doc_id)
        return True
