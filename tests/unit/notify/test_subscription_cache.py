"""SubscriptionCache: a failed reload keeps the last good set and waits a full period."""

from __future__ import annotations

import asyncio

from elasticsearch import AsyncElasticsearch

from cpwatch.settings import Settings
from notify.matcher import SubscriptionCache
from notify.subscriptions import Subscription


class FailingCache(SubscriptionCache):
    """Counts reload attempts, each failing as an unreachable cluster would."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings) -> None:
        super().__init__(es, settings, refresh_s=60)
        self.attempts = 0

    async def load(self) -> dict[str, Subscription]:
        self.attempts += 1
        raise ConnectionError("cluster unreachable")


def test_failed_reload_is_not_retried_on_every_call() -> None:
    async def scenario() -> int:
        es = AsyncElasticsearch("http://127.0.0.1:9")  # never contacted: load is overridden
        cache = FailingCache(es, Settings())
        # A worker starting while Elasticsearch is down: every call used to retry at once.
        for _ in range(50):
            assert await cache.get() == {}
        await cache.get(force=True)  # an explicit reload still goes through
        await es.close()
        return cache.attempts

    assert asyncio.run(scenario()) == 2
