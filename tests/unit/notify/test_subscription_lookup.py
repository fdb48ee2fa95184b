"""SubscriptionLookup: the delivery agent's subscriptions, by id, each kept ``refresh_s``."""

from __future__ import annotations

import asyncio
from typing import Any

from cpwatch.settings import Settings
from notify.matcher import SubscriptionLookup
from notify.subscriptions import EmailChannel, Subscription

SUB = Subscription(name="a", query="IMF", channel=EmailChannel(address="a@example.org"))


class FakeEs:
    """Answers GET by id from ``docs``; counts the calls."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {SUB.id: SUB.to_es_doc()}
        self.gets = 0

    def options(self, **_: Any) -> FakeEs:
        return self

    async def get(self, *, index: str, id: str) -> dict[str, Any]:  # noqa: A002 - ES's name
        self.gets += 1
        doc = self.docs.get(id)
        return {"found": True, "_source": doc} if doc else {"found": False}


def test_held_for_refresh_s_then_fetched_again_and_gone_when_deleted() -> None:
    async def scenario() -> None:
        es = FakeEs()
        lookup = SubscriptionLookup(es, Settings(), refresh_s=0.2)  # type: ignore[arg-type]
        assert await lookup.get(SUB.id) == SUB
        assert await lookup.get(SUB.id) == SUB and es.gets == 1  # held
        assert await lookup.get("missing") is None and await lookup.get("missing") is None
        assert es.gets == 3  # a miss is not remembered: it may be created meanwhile
        del es.docs[SUB.id]
        await asyncio.sleep(0.25)
        assert await lookup.get(SUB.id) is None  # deleted: seen once the period is over

    asyncio.run(scenario())


def test_bounded() -> None:
    async def scenario() -> None:
        es = FakeEs()
        for i in range(5):
            s = Subscription(name=f"s{i}", channel=EmailChannel(address="a@example.org"))
            es.docs[s.id] = s.to_es_doc()
        lookup = SubscriptionLookup(es, Settings(), max_size=2)  # type: ignore[arg-type]
        for sid in list(es.docs):
            assert await lookup.get(sid) is not None
        assert len(lookup._held) == 2

    asyncio.run(scenario())
