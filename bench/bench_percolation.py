"""Subscription matching throughput: 10,000 stored subscriptions, batches of policy events.

Matching goes through ``notify.matcher`` (scratch index + one ``_msearch`` per batch; this
Elasticsearch distribution has no percolator). Runs in a fresh index prefix, cleaned up after.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from typing import Any

from elasticsearch import AsyncElasticsearch, Elasticsearch, helpers

from cpwatch.settings import Settings
from notify.matcher import EventMatcher, SubscriptionCache
from notify.subscriptions import EmailChannel, Filters, Subscription
from sinks.indices import ensure_indices

N_SUBS = 10_000
N_BATCHES = int(__import__("os").environ.get("BENCH_BATCHES", "50"))
BATCH = 20

WORDS = [
    "IMF",
    "mining",
    "reserve",
    "ban",
    "legal tender",
    "ETF",
    "stablecoin",
    "tax",
    "central bank",
    "CBDC",
    "sanctions",
    "exchange",
    "licence",
    "bitcoin",
    "Pakistan",
    "El Salvador",
    "regulation",
    "custody",
    "energy",
    "treasury",
]
# Selective subscriptions, as real ones are: two of ~220 terms each, events carry ~12 terms.
VOCAB = WORDS + [f"topic{i:03d}" for i in range(200)]
COUNTRIES = ["PK", "SV", "US", "GB", "DE", "FR", "JP", "BR", "AR", "NG", "IN", "CN", "RU", "UA"]
CATEGORIES = [
    "reserve",
    "mining_energy",
    "cooperation",
    "multilateral",
    "ban",
    "legal_tender",
    "regulation",
    "taxation",
    "cbdc",
]


def _subscriptions(rng: random.Random) -> list[Subscription]:
    subs = []
    for i in range(N_SUBS):
        a, b = rng.sample(VOCAB, 2)
        query = rng.choice([f'"{a}"', f'"{a}" AND "{b}"', f'"{a}" | "{b}"', f'"{a}" -"{b}"', None])
        filters = Filters(
            countries=tuple(rng.sample(COUNTRIES, rng.choice([0, 0, 1, 2]))),
            categories=tuple(rng.sample(CATEGORIES, rng.choice([0, 0, 1]))),
        )
        subs.append(
            Subscription(
                name=f"bench-{i}",
                query=query,
                filters=filters,
                channel=EmailChannel(address=f"u{i}@example.org"),
            )
        )
    return subs


def _event(rng: random.Random, n: int) -> dict[str, Any]:
    words = rng.sample(VOCAB, 12)
    return {
        "id": f"ev-{n}",
        "cluster_id": f"ev-{n}",
        "title": " ".join(words[:4]),
        "text": "Officials discussed " + ", ".join(words[4:]) + " in parliament.",
        "published": "2025-05-28T10:00:00Z",
        "source": "bench",
        "categories": rng.sample(CATEGORIES, 2),
        "countries": rng.sample(COUNTRIES, 2),
        "orgs": [],
        "severity": round(rng.random(), 2),
        "is_policy_event": True,
    }


async def _match(settings: Settings, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
    es = AsyncElasticsearch(**settings.es_client_kwargs())
    try:
        cache = SubscriptionCache(es, settings)
        t0 = time.perf_counter()
        subs = await cache.get(force=True)
        load_s = time.perf_counter() - t0
        matcher = EventMatcher(es, settings)
        per_batch = []
        t0 = time.perf_counter()
        for batch in batches:
            b0 = time.perf_counter()
            await matcher.match(batch, subs)
            per_batch.append(time.perf_counter() - b0)
        elapsed = time.perf_counter() - t0
        per_batch.sort()
        st = matcher.stats
        return {
            "subscriptions_loaded": len(subs),
            "load_s": round(load_s, 3),
            "events": st.events,
            "batches": st.batches,
            "queries": st.queries,
            "matches": st.matches,
            "elapsed_s": round(elapsed, 3),
            "events_per_s": round(st.events / elapsed, 1),
            "batch_p50_ms": round(per_batch[len(per_batch) // 2] * 1000, 1),
            "batch_max_ms": round(per_batch[-1] * 1000, 1),
        }
    finally:
        await es.close()


def run() -> dict[str, Any]:
    base = Settings()
    prefix = f"bench-match-{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(update={"es_index_prefix": prefix})
    rng = random.Random(42)  # noqa: S311 - test data
    es = Elasticsearch(**settings.es_client_kwargs())
    try:
        ensure_indices(es, settings, ["subscriptions", "match-scratch"])
        subs = _subscriptions(rng)
        helpers.bulk(
            es,
            (
                {"_index": settings.index("subscriptions"), "_id": s.id, "_source": s.to_es_doc()}
                for s in subs
            ),
            chunk_size=2000,
        )
        es.indices.refresh(index=settings.index("subscriptions"))
        batches = [[_event(rng, b * BATCH + i) for i in range(BATCH)] for b in range(N_BATCHES)]
        result = asyncio.run(_match(settings, batches))
        result.update({"subscriptions": N_SUBS, "batch_size": BATCH})
        es.indices.refresh(index=settings.index("match-scratch"))
        left = es.count(index=settings.index("match-scratch"))["count"]
        result["scratch_docs_left"] = left
        return result
    finally:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")
        es.close()


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
