"""Subscription matching throughput: candidate path (ours) vs brute force, same run, same data.

``python -m bench.bench_percolation --subscriptions N`` stores N selective synthetic
subscriptions (2-3 words of a 5,000-word vocabulary: AND, phrase, OR group, negation; plus
country/category filters on about half), syncs the candidate index, then matches a backlog of
events in batches of ``--batch`` (what the agent takes under backlog) with
``EventMatcher.match``, a few idle-sized batches for latency, and the first ``--brute-events``
events with ``match_brute_force`` (the previous method, batches of 20 as it ran). The pairs
both paths found for those events must be equal (``exact``). Runs in a fresh index prefix,
deleted after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time
import uuid
from typing import Any

from elasticsearch import Elasticsearch, helpers

from cpwatch.settings import Settings
from notify.matcher import EventMatcher, SubscriptionCache
from notify.subscriptions import EmailChannel, Filters, Subscription
from runtime.elasticsearch import async_client
from sinks.indices import ensure_indices

SYLLABLES = ["ka", "lo", "mi", "ru", "te", "xa", "zo", "pu", "ne", "vi", "bo", "da", "fe", "gu"]
FILLER = "officials said the government would discuss the plan in parliament next week".split()
COUNTRIES = ["PK", "SV", "US", "GB", "DE", "FR", "JP", "BR", "AR", "NG", "IN", "CN", "RU", "UA"]
CATEGORIES = ["reserve", "mining_energy", "cooperation", "multilateral", "ban", "legal_tender"]
IDLE_BATCH = 20


def vocabulary(rng: random.Random, n: int = 5_000) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(4)))
    return sorted(words)


def subscriptions(rng: random.Random, vocab: list[str], n: int) -> list[Subscription]:
    subs = []
    for i in range(n):
        a, b, c = rng.sample(vocab, 3)
        query = rng.choices(
            [f"{a} {b}", f"{a} AND {b} AND {c}", f'"{a} {b}" {c}', f"({a} | {b}) {c}", f"{a} -{b}"],
            weights=[40, 25, 15, 15, 5],
        )[0]
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


def event(rng: random.Random, vocab: list[str], n: int) -> dict[str, Any]:
    words = rng.sample(vocab, 12)
    if rng.random() < 0.3:  # some events carry a phrase some subscriptions ask for
        words[5:7] = [words[5], words[6]]
    filler = rng.sample(FILLER, 6)
    return {
        "id": f"ev-{n}",
        "cluster_id": f"ev-{n}",
        "title": " ".join(words[:4]),
        "text": " ".join(filler[:3] + words[4:] + filler[3:]) + ".",
        "published": "2025-05-28T10:00:00Z",
        "source": "bench",
        "categories": rng.sample(CATEGORIES, 2),
        "countries": rng.sample(COUNTRIES, 2),
        "orgs": [],
        "severity": round(rng.random(), 2),
        "is_policy_event": True,
    }


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _pairs(matches: list[tuple[Subscription, dict[str, Any]]]) -> set[tuple[str, str]]:
    return {(s.id, e["id"]) for s, e in matches}


async def _timed(
    matcher: EventMatcher, subs: dict[str, Subscription], batches: list[Any], brute: bool
) -> tuple[float, list[float], set[tuple[str, str]]]:  # noqa: E501
    per, pairs = [], set()
    t0 = time.perf_counter()
    for batch in batches:
        b0 = time.perf_counter()
        fn = matcher.match_brute_force if brute else matcher.match
        pairs |= _pairs(await fn(batch, subs))
        per.append(time.perf_counter() - b0)
    return time.perf_counter() - t0, per, pairs


async def _match(settings: Settings, events: list[dict[str, Any]], args: Any) -> dict[str, Any]:
    es = async_client(settings)  # the worker's client (orjson)
    try:
        t0 = time.perf_counter()
        subs = await SubscriptionCache(es, settings).get(force=True)
        load_s = time.perf_counter() - t0
        matcher = EventMatcher(es, settings)
        t0 = time.perf_counter()
        await matcher.candidates.sync(subs)
        sync_s = time.perf_counter() - t0
        rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        backlog = [events[i : i + args.batch] for i in range(0, len(events), args.batch)]
        elapsed, per, ours = await _timed(matcher, subs, backlog, brute=False)
        st = matcher.stats
        idle = [
            events[i : i + IDLE_BATCH] for i in range(0, IDLE_BATCH * args.idle_batches, IDLE_BATCH)
        ]
        _, idle_per, _ = await _timed(matcher, subs, idle, brute=False)
        rss_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak so far
        sample = events[: args.brute_events]  # 0: no brute force (a profile of ours alone)
        brute_batches = [sample[i : i + IDLE_BATCH] for i in range(0, len(sample), IDLE_BATCH)]
        b_elapsed, b_per, brute = await _timed(matcher, subs, brute_batches, brute=True)
        ids = {e["id"] for e in sample}
        ours_sample = {p for p in ours if p[1] in ids}
        eps, b_eps = len(events) / elapsed, len(sample) / b_elapsed if sample else 0.0
        return {
            "subscriptions_loaded": len(subs),
            "load_s": round(load_s, 1),
            "candidate_sync_s": round(sync_s, 1),
            "events": len(events),
            "batch_size": args.batch,
            "batches": len(backlog),
            "candidate_pairs": st.candidates,
            "matches": len(ours),
            "matches_per_event": round(len(ours) / len(events), 2),
            "events_per_s": round(eps, 1),
            "p50_match_s": round(_pct(per, 0.5), 3),
            "p99_match_s": round(_pct(per, 0.99), 3),
            "idle_batch_size": IDLE_BATCH,
            "idle_p50_match_s": round(_pct(idle_per, 0.5), 3),
            "idle_p99_match_s": round(_pct(idle_per, 0.99), 3),
            "brute_force_events": len(sample),
            "brute_force_batch_size": IDLE_BATCH,
            "brute_force_events_per_s": round(b_eps, 2),
            "brute_force_p50_batch_s": round(_pct(b_per, 0.5), 3) if b_per else None,
            "speedup": round(eps / b_eps, 1) if b_eps else None,
            "exact": ours_sample == brute if sample else None,
            "rss_after_load_mb": round(rss_loaded),
            "rss_max_after_ours_mb": round(rss_ours),
            "rss_max_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    finally:
        await es.close()


def run(args: Any = None) -> dict[str, Any]:
    args = args or _parser().parse_args([])
    prefix = f"bench-match-{uuid.uuid4().hex[:6]}"
    settings = Settings().model_copy(
        update={"es_index_prefix": prefix, "max_subscriptions": max(args.subscriptions, 1)}
    )
    rng = random.Random(42)  # noqa: S311 - test data
    es = Elasticsearch(**settings.es_client_kwargs())
    try:
        ensure_indices(
            es, settings, ["events", "subscriptions", "match-candidates", "match-scratch"]
        )
        vocab = vocabulary(rng)
        subs = subscriptions(rng, vocab, args.subscriptions)
        helpers.bulk(
            es,
            (
                {"_index": settings.index("subscriptions"), "_id": s.id, "_source": s.to_es_doc()}
                for s in subs
            ),
            chunk_size=2000,
        )
        es.indices.refresh(index=settings.index("subscriptions"))
        del subs
        events = [event(rng, vocab, n) for n in range(args.events)]
        result = asyncio.run(_match(settings, events, args))
        result["subscriptions"] = args.subscriptions
        es.indices.refresh(index=settings.index("match-scratch"))
        result["scratch_docs_left"] = es.count(index=settings.index("match-scratch"))["count"]
        return result
    finally:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")
        es.close()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subscriptions", type=int, default=10_000)
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=2_000, help="events per batch under backlog")
    p.add_argument("--idle-batches", type=int, default=20, help="batches of 20 for latency")
    p.add_argument("--brute-events", type=int, default=100, help="events for brute force")
    return p


def main() -> None:
    print(json.dumps(run(_parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
