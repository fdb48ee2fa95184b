"""The shared SSE poller: one search per period for any number of listeners, fan-out to each,
a bounded queue per listener, the stop when nobody listens, and the cap."""

from __future__ import annotations

import asyncio
import threading

import pytest

from api.sse import QUEUE_SIZE, Cursor, EventHub, TooManyClients


class CountingFetch:
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        self.pending: list[dict[str, str]] = []

    def __call__(self, since: str | None, skip: set[str]) -> list[dict[str, str]]:
        with self.lock:
            self.calls += 1
            docs, self.pending = self.pending, []
        return docs


def doc(i: int) -> dict[str, str]:
    return {"id": f"e{i}", "ingested_at": f"2026-01-01T00:00:{i:02d}Z"}


def test_every_listener_gets_every_event_from_one_search() -> None:
    async def scenario() -> None:
        fetch = CountingFetch()
        hub = EventHub(fetch, period=3600, max_clients=10)  # the loop polls once, then waits
        listeners = [hub.subscribe() for _ in range(5)]
        while hub.polls < 1:
            await asyncio.sleep(0.01)
        fetch.pending = [doc(1), doc(2)]
        await hub.poll_once()
        assert fetch.calls == 2, "one search per period, not one per listener"
        for listener in listeners:
            got = [await listener.next(1) for _ in range(2)]
            assert got == [("doc", doc(1)), ("doc", doc(2))]
        for listener in listeners:
            hub.unsubscribe(listener)

    asyncio.run(scenario())


@pytest.mark.parametrize("n", [1, 8])
def test_searches_per_period_do_not_grow_with_listeners(n: int) -> None:
    async def scenario() -> int:
        fetch = CountingFetch()
        hub = EventHub(fetch, period=0.05, max_clients=16)
        listeners = [hub.subscribe() for _ in range(n)]
        await asyncio.sleep(0.5)  # about ten periods
        for listener in listeners:
            hub.unsubscribe(listener)
        return fetch.calls

    calls = asyncio.run(scenario())
    assert 3 <= calls <= 12, calls  # ~10 whatever n; n per period would be 8x more


def test_poller_stops_with_the_last_listener() -> None:
    async def scenario() -> None:
        fetch = CountingFetch()
        hub = EventHub(fetch, period=0.01, max_clients=4)
        a, b = hub.subscribe(), hub.subscribe()
        assert hub.running
        hub.unsubscribe(a)
        assert hub.running
        hub.unsubscribe(b)
        await asyncio.sleep(0.05)
        assert not hub.running
        calls = fetch.calls
        await asyncio.sleep(0.1)
        assert fetch.calls == calls, "no searches without listeners"
        c = hub.subscribe()
        while fetch.calls == calls:
            await asyncio.sleep(0.01)
        hub.unsubscribe(c)

    asyncio.run(scenario())


def test_cap_refuses_past_max_clients() -> None:
    async def scenario() -> None:
        hub = EventHub(CountingFetch(), period=1, max_clients=2)
        a, _ = hub.subscribe(), hub.subscribe()
        with pytest.raises(TooManyClients):
            hub.subscribe()
        hub.unsubscribe(a)
        hub.unsubscribe(hub.subscribe())  # a slot is free again

    asyncio.run(scenario())


def test_a_slow_listener_is_told_to_reconnect_without_holding_the_others() -> None:
    async def scenario() -> None:
        fetch = CountingFetch()
        hub = EventHub(fetch, period=3600, max_clients=4)
        slow, fast = hub.subscribe(), hub.subscribe()
        while hub.polls < 1:
            await asyncio.sleep(0.01)
        for i in range(QUEUE_SIZE + 5):
            fetch.pending = [doc(i % 60) | {"id": f"x{i}"}]
            await hub.poll_once()
            assert (await fast.next(1)) is not None
        assert slow.queue.qsize() == 1 and (await slow.next(1)) == ("overflow", None)
        hub.unsubscribe(slow)
        hub.unsubscribe(fast)

    asyncio.run(scenario())


def test_cursor_sends_each_event_once_in_ingestion_order() -> None:
    cursor = Cursor("2026-01-01T00:00:02Z")
    feed = [doc(1), doc(2), doc(3), doc(3), doc(2)]
    assert [d["id"] for d in feed if cursor.admit(d)] == ["e2", "e3"]
