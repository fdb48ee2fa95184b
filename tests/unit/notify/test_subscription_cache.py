"""SubscriptionCache: no set is served before one was loaded; afterwards a failed reload keeps
the last good set and waits a full period."""

from __future__ import annotations

import asyncio

import pytest
from elasticsearch import AsyncElasticsearch, ConnectionError

from cpwatch.settings import Settings
from notify.es_retry import retry_es
from notify.matcher import SubscriptionCache
from notify.subscriptions import Subscription

UNREACHABLE = "http://127.0.0.1:9"  # never contacted: load and the stats call are overridden


class FlakyCache(SubscriptionCache):
    """Fails its first ``failures`` loads as an unreachable cluster would, then loads ``good``."""

    def __init__(
        self, es: AsyncElasticsearch, good: dict[str, Subscription], *, failures: int
    ) -> None:
        super().__init__(es, Settings(), refresh_s=60)
        self.good, self.failures, self.attempts = good, failures, 0

    async def _version_or_none(self) -> tuple[int, ...] | None:
        return None  # unknown: every due reload loads

    async def load(self) -> dict[str, Subscription]:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError("cluster unreachable")
        return dict(self.good)


def one_subscription() -> dict[str, Subscription]:
    sub = Subscription(
        id="s1",
        name="imf",
        query="IMF",
        channel={"type": "webhook", "url": "http://x.test/", "secret": "s" * 32},
    )
    return {sub.id: sub}


def test_no_set_is_served_before_the_first_load() -> None:
    """A worker starting while Elasticsearch is down: an empty set would match every event to
    nobody. Each call tries again and raises, so the caller waits the outage out."""

    async def scenario() -> int:
        es = AsyncElasticsearch(UNREACHABLE)
        cache = FlakyCache(es, one_subscription(), failures=3)
        for _ in range(3):
            with pytest.raises(ConnectionError):
                await cache.get()
        assert set(await cache.get()) == {"s1"}
        await es.close()
        return cache.attempts

    assert asyncio.run(scenario()) == 4


def test_a_failed_reload_keeps_the_last_set_for_a_full_period() -> None:
    async def scenario() -> int:
        es = AsyncElasticsearch(UNREACHABLE)
        cache = FlakyCache(es, one_subscription(), failures=0)
        assert set(await cache.get()) == {"s1"}
        cache.failures = 10**6  # the cluster goes away
        for i in range(50):
            assert set(await cache.get(force=i == 0)) == {"s1"}
        await es.close()
        return cache.attempts

    assert asyncio.run(scenario()) == 2  # the first load, then one forced reload that failed


def test_the_matcher_waits_for_the_first_set() -> None:
    """The match agent's call (``retry_es`` over ``get``) returns the set once the cluster
    answers, after backing off, instead of matching against nothing."""

    async def scenario() -> tuple[set[str], list[float]]:
        es = AsyncElasticsearch(UNREACHABLE)
        cache = FlakyCache(es, one_subscription(), failures=2)
        slept: list[float] = []

        async def sleep(s: float) -> None:
            slept.append(s)

        subs = await retry_es(cache.get, "subscriptions", sleep=sleep)
        await es.close()
        return set(subs), slept

    got, slept = asyncio.run(scenario())
    assert got == {"s1"} and len(slept) == 2
