"""SubscriptionCache on the real engine: a period without writes costs no reload; a write, a
delete or a subscription the cache has not seen yet is picked up."""

from __future__ import annotations

import asyncio

import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch

from cpwatch.settings import Settings
from notify.matcher import SubscriptionCache
from notify.subscriptions import Subscription
from sinks.indices import ensure_indices

pytestmark = pytest.mark.integration


def sub(i: int) -> Subscription:
    channel = {"type": "webhook", "url": f"https://hooks.example.org/{i}", "secret": "x" * 16}
    return Subscription.model_validate({"name": f"sub {i}", "query": "bitcoin", "channel": channel})


def put(es: Elasticsearch, s: Settings, item: Subscription) -> None:
    es.index(index=s.index("subscriptions"), id=item.id, document=item.to_es_doc(), refresh=True)


def test_reload_only_when_the_index_changed(kafka_settings: Settings) -> None:
    s = kafka_settings
    es = Elasticsearch(**s.es_client_kwargs())
    ensure_indices(es, s, ["subscriptions"])
    first = [sub(i) for i in range(30)]
    for item in first:
        put(es, s, item)

    async def scenario() -> None:
        aes = AsyncElasticsearch(**s.es_client_kwargs())
        cache = SubscriptionCache(aes, s, refresh_s=0)
        try:
            assert set(await cache.get()) == {x.id for x in first}
            loads = cache.loads
            for _ in range(5):  # nothing written: every period skips the reload
                await cache.get()
            assert cache.loads == loads

            extra = sub(99)
            put(es, s, extra)
            assert extra.id in await cache.get()
            es.delete(index=s.index("subscriptions"), id=first[0].id, refresh=True)
            assert first[0].id not in await cache.get()

            late = sub(100)  # written, and asked for before any reload saw it
            put(es, s, late)
            assert await cache.fetch(late.id) == late
            assert await cache.fetch("no-such-subscription") is None
        finally:
            await aes.close()

    try:
        asyncio.run(scenario())
    finally:
        es.close()
