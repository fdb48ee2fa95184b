"""Search latency on 100,000 synthetic articles, through the same service function as the API.

Bulk-indexes generated articles (fixed seed) into a fresh index prefix, then times 300 searches
with varied queries, filters and second pages (p50/p90/p99 in ms, client-measured, facets and
highlights included), walks 105 pages of 100 with ``search_after`` past the 10,000-hit window,
and deletes the index at the end.

    .venv/bin/python -m bench.bench_search
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from elasticsearch import Elasticsearch, helpers

from api import search_service
from api.search import parse_params
from cpwatch.settings import Settings
from sinks.indices import concrete_index, ensure_indices

DOCS = 100_000
SEARCHES = 300
DEEP_PAGES = 105  # x 100 hits: past index.max_result_window (10,000)
SEED = 11

PLACES = [
    "Pakistan",
    "El Salvador",
    "Nigeria",
    "India",
    "Brazil",
    "Kazakhstan",
    "Argentina",
    "Japan",
    "Germany",
    "Texas",
    "Bhutan",
    "Kenya",
    "Vietnam",
    "Turkey",
    "Canada",
]
COUNTRIES = [
    "PK",
    "SV",
    "NG",
    "IN",
    "BR",
    "KZ",
    "AR",
    "JP",
    "DE",
    "US",
    "BT",
    "KE",
    "VN",
    "TR",
    "CA",
]
ORGS = ["IMF", "SEC", "FATF", "World Bank", "ECB", "BIS", "Treasury", "central bank"]
CATEGORIES = [
    "regulation",
    "ban",
    "reserve",
    "tax",
    "cbdc",
    "mining_energy",
    "legal_tender",
    "cooperation",
    "multilateral",
    "enforcement",
]
ACTIONS = [
    "approves",
    "rejects",
    "debates",
    "delays",
    "proposes",
    "blocks",
    "signs",
    "reviews",
    "expands",
    "suspends",
]
SUBJECTS = [
    "bitcoin reserve",
    "stablecoin law",
    "mining power tariffs",
    "crypto tax",
    "exchange licences",
    "digital currency pilot",
    "letter of intent",
    "loan programme",
    "custody rules",
    "trading ban",
    "energy subsidy",
    "payment rails",
]
FILLER = (
    "officials said the plan would be reviewed by lawmakers before the budget vote while "
    "analysts expect market volatility investors watched closely as regulators weighed "
    "consumer protection concerns capital controls inflation remittances treasury bonds "
    "holdings purchases electricity surplus data centres compliance audits wallets "
    "custodians exchanges liquidity settlement cross border transfers sanctions"
).split()


def _article(rnd: random.Random, i: int) -> dict[str, Any]:
    place_i = rnd.randrange(len(PLACES))
    org, subject = rnd.choice(ORGS), rnd.choice(SUBJECTS)
    words = rnd.choices(FILLER, k=rnd.randint(30, 70))
    text = (
        f"{PLACES[place_i]} {rnd.choice(ACTIONS)} {subject}. The {org} commented on the "
        f"{rnd.choice(SUBJECTS)}. " + " ".join(words) + "."
    )
    day = rnd.randrange(3 * 365)
    return {
        "id": f"a{i:06d}",
        "source": f"wire-{i % 7}",
        "title": f"{PLACES[place_i]} {rnd.choice(ACTIONS)} {subject} as {org} weighs in",
        "text": text,
        "published": f"{2023 + day // 365}-{1 + day % 365 // 31:02d}-{1 + day % 28:02d}T"
        f"{rnd.randrange(24):02d}:00:00Z",
        "categories": rnd.sample(CATEGORIES, k=rnd.randint(1, 3)),
        "countries": [COUNTRIES[place_i]],
        "orgs": [org],
        "is_policy_event": True,
    }


def _actions(index: str) -> Iterator[dict[str, Any]]:
    rnd = random.Random(SEED)  # noqa: S311 - reproducible synthetic data
    for i in range(DOCS):
        doc = _article(rnd, i)
        yield {"_index": index, "_id": doc["id"], "_source": doc}


def _query(rnd: random.Random) -> dict[str, Any]:
    """One varied search: plain words, phrases, OR/NOT, prefixes; half of them filtered."""
    kind = rnd.randrange(6)
    if kind == 0:
        q = rnd.choice(PLACES).split()[0]
    elif kind == 1:
        q = f"{rnd.choice(ORGS).split()[0]} {rnd.choice(SUBJECTS).split()[0]}"
    elif kind == 2:
        q = f'"{rnd.choice(SUBJECTS)}"'
    elif kind == 3:
        q = f"{rnd.choice(FILLER)} | {rnd.choice(FILLER)}"
    elif kind == 4:
        q = f"{rnd.choice(SUBJECTS).split()[0]} -{rnd.choice(PLACES).split()[0]}"
    else:
        stem = rnd.choice([w for w in FILLER if len(w) > 5])[:4]
        q = f"{stem}* {rnd.choice(PLACES).split()[0]}"
    kw: dict[str, Any] = {"index": "articles", "size": rnd.choice([10, 20, 50])}
    if rnd.random() < 0.5:
        kw["category"] = rnd.sample(CATEGORIES, k=rnd.randint(1, 2))
    if rnd.random() < 0.3:
        kw["country"] = rnd.sample(COUNTRIES, k=rnd.randint(1, 3))
    if rnd.random() < 0.3:
        year = rnd.choice([2023, 2024, 2025])
        kw["since"], kw["until"] = f"{year}-01-01", f"{year}-06-30"
    return {"q": q, **kw}


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 2)


def run() -> dict[str, Any]:
    prefix = f"bench-search-{uuid.uuid4().hex[:6]}"
    settings = Settings().model_copy(update={"es_index_prefix": prefix})
    es = Elasticsearch(**settings.es_client_kwargs())  # type: ignore[arg-type]
    index = concrete_index(settings, "articles")
    try:
        ensure_indices(es, settings, ["articles"])
        es.indices.put_settings(index=index, settings={"refresh_interval": "-1"})  # bulk load
        t0 = time.perf_counter()
        slow = es.options(request_timeout=300)
        ok, _ = helpers.bulk(slow, _actions(settings.index("articles")), chunk_size=5000)
        es.indices.put_settings(index=index, settings={"refresh_interval": "1s"})
        es.indices.refresh(index=index)
        slow.indices.forcemerge(index=index, max_num_segments=1)
        load_s = time.perf_counter() - t0

        rnd = random.Random(SEED + 1)  # noqa: S311
        for _ in range(20):  # warm caches and the connection pool; not timed
            search_service.search(es, settings, parse_params(**_query(rnd)))
        lat: list[float] = []
        hits_total = 0
        while len(lat) < SEARCHES:
            params = parse_params(**_query(rnd))
            t = time.perf_counter()
            out = search_service.search(es, settings, params)
            lat.append((time.perf_counter() - t) * 1000)
            hits_total += out["total"]
            if out["next"] and rnd.random() < 0.2 and len(lat) < SEARCHES:  # some second pages
                page2 = parse_params(
                    params.q, index="articles", size=params.size, after=out["next"]
                )
                t = time.perf_counter()
                search_service.search(es, settings, page2)
                lat.append((time.perf_counter() - t) * 1000)

        seen: set[str] = set()
        after, t = None, time.perf_counter()
        for _ in range(DEEP_PAGES):
            page = parse_params("", index="articles", size=100, after=after)
            out = search_service.search(es, settings, page)
            seen.update(h["id"] for h in out["hits"])
            after = out["next"]
        deep_s = time.perf_counter() - t
        return {
            "docs": ok,
            "bulk_load_s": round(load_s, 1),
            "docs_per_s": round(ok / load_s),
            "searches": len(lat),
            "latency_ms": {
                "p50": _pct(lat, 50),
                "p90": _pct(lat, 90),
                "p99": _pct(lat, 99),
                "mean": round(statistics.fmean(lat), 2),
                "max": round(max(lat), 2),
            },
            "mean_total_hits": round(hits_total / SEARCHES),
            "deep_pagination": {
                "pages": DEEP_PAGES,
                "unique_hits": len(seen),
                "ok": len(seen) == DEEP_PAGES * 100,
                "ms_per_page": round(deep_s * 1000 / DEEP_PAGES, 2),
            },
        }
    finally:
        es.options(ignore_status=404).indices.delete(index=index)
        quiet = es.options(ignore_status=404)
        quiet.indices.delete_index_template(name=settings.index("articles"))
        es.close()


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=2)
    sys.stdout.write("\n")
