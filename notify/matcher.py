"""Match a batch of policy events against every subscription: Elasticsearch does the work.

Why not the percolator: the issue asked for subscriptions stored with a ``percolator`` field
and one ``percolate`` request per batch. The distribution cpwatch runs (Elasticsearch's
``integ-test-zip``) ships only the core modules, and ``percolator`` is not among them. So the
direction is reversed, still with one search request per batch:

1. the batch's event documents are indexed into a small scratch index
   (``<prefix>-match-scratch``, the events mapping, so the same analyzer as search) with
   ``refresh=wait_for`` (the scratch index refreshes every 100 ms);
2. one ``_msearch`` carries one query per candidate subscription: its ``event_query`` (the
   stored ``simple_query_string``) plus its keyword filters, restricted by an ``ids`` filter
   to the batch's scratch documents; each response lists the events that subscription matches;
3. the scratch documents are deleted (bulk deletes by id: ``_delete_by_query`` lives in the
   absent ``reindex`` module).

Subscriptions whose keyword filters (pure, ``Subscription.matches_event``) pass no event of
the batch are not sent at all, and those without a query need no search. Every scratch id is
unique to its batch, so concurrent matchers can share the scratch index.

Subscriptions are read from ``<prefix>-subscriptions`` with a bounded search (``search_after``
pages, at most ``max_subscriptions``) and cached; ``SubscriptionCache.get`` reloads them when
the cache is older than ``refresh_s``.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch

from cpwatch.settings import Settings
from notify.subscriptions import EVENT_KEYWORDS, Subscription

log = logging.getLogger(__name__)

PAGE = 1_000
SEARCH_FIELDS = ["title^2", "text"]


class SubscriptionCache:
    """The active subscription set, loaded from Elasticsearch, refreshed every ``refresh_s``."""

    def __init__(
        self, es: AsyncElasticsearch, settings: Settings, *, refresh_s: float | None = None
    ) -> None:
        self.es, self.settings = es, settings
        self.alias = settings.index("subscriptions")
        self.refresh_s = settings.subscriptions_refresh_s if refresh_s is None else refresh_s
        self.max = settings.max_subscriptions
        self._subs: dict[str, Subscription] = {}
        self._loaded_at = float("-inf")
        self.invalid = 0  # documents that no longer validate (skipped, logged)

    async def get(self, *, force: bool = False) -> dict[str, Subscription]:
        if force or time.monotonic() - self._loaded_at >= self.refresh_s:
            # Stamped before loading: a failed reload waits a full period too, instead of
            # sending every call back to an unavailable cluster.
            self._loaded_at = time.monotonic()
            try:
                self._subs = await self.load()
            except Exception as exc:  # noqa: BLE001 - keep serving the last good set
                log.warning("subscriptions reload failed (%r); keeping %d", exc, len(self._subs))
        return self._subs

    async def load(self) -> dict[str, Subscription]:
        subs: dict[str, Subscription] = {}
        after: list[Any] | None = None
        while len(subs) < self.max:
            kw: dict[str, Any] = {"search_after": after} if after else {}
            resp = await self.es.options(ignore_status=404).search(
                index=self.alias,
                size=min(PAGE, self.max - len(subs)),
                sort=["_doc"],
                query={"match_all": {}},
                **kw,
            )
            hits = resp.get("hits", {}).get("hits", [])
            for hit in hits:
                try:
                    sub = Subscription.from_es_doc(hit["_source"])
                except ValueError as exc:
                    self.invalid += 1
                    log.warning("subscription %s invalid, skipped: %s", hit.get("_id"), exc)
                    continue
                subs[sub.id] = sub
            if len(hits) < PAGE:
                break
            after = hits[-1]["sort"]
        return subs


def subscription_query(sub: Subscription, ids: list[str]) -> dict[str, Any]:
    """``sub.event_query`` over the batch (``ids``), plus its keyword filters for ES to apply."""
    query = sub.event_query(ids[0])
    clauses: list[dict[str, Any]] = query["bool"]["filter"]
    for clause in clauses:
        if "ids" in clause:
            clause["ids"]["values"] = ids
    f = sub.filters
    for name in EVENT_KEYWORDS:
        wanted = getattr(f, name)
        if wanted:
            clauses.append({"terms": {name: list(wanted)}})
    if f.min_severity > 0:
        clauses.append({"range": {"severity": {"gte": f.min_severity}}})
    return query


@dataclass
class MatchStats:
    batches: int = 0
    events: int = 0
    queries: int = 0
    matches: int = 0


class EventMatcher:
    """``match(events, subs)`` -> ``[(subscription, event), ...]`` with one ``_msearch``."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings, *, chunk: int = 500) -> None:
        self.es = es
        self.chunk = chunk  # named subscription clauses per search in the _msearch
        self.scratch = settings.index("match-scratch")
        self.stats = MatchStats()

    async def match(
        self, events: list[dict[str, Any]], subs: dict[str, Subscription] | list[Subscription]
    ) -> list[tuple[Subscription, dict[str, Any]]]:
        subs_list = list(subs.values()) if isinstance(subs, dict) else list(subs)
        if not events or not subs_list:
            return []
        self.stats.batches += 1
        self.stats.events += len(events)
        token = uuid.uuid4().hex
        ids = [f"{token}-{i}" for i in range(len(events))]
        by_id = dict(zip(ids, events, strict=True))
        out: list[tuple[Subscription, dict[str, Any]]] = []
        searches: list[tuple[Subscription, list[str]]] = []
        for sub in subs_list:
            cand = [i for i in ids if sub.matches_event(by_id[i])]  # pure pre-filter
            if not cand:
                continue
            if sub.query:
                searches.append((sub, cand))
            else:
                out.extend((sub, by_id[i]) for i in cand)
        if searches:
            out.extend(await self._search(searches, by_id))
        self.stats.matches += len(out)
        return out

    async def _search(
        self, searches: list[tuple[Subscription, list[str]]], by_id: dict[str, dict[str, Any]]
    ) -> list[tuple[Subscription, dict[str, Any]]]:
        needed = sorted({i for _, cand in searches for i in cand})
        ops: list[dict[str, Any]] = []
        for i in needed:
            ops.append({"index": {"_index": self.scratch, "_id": i}})
            ops.append(by_id[i])
        resp = await self.es.bulk(operations=ops, refresh="wait_for")
        if resp.get("errors"):
            bad = [it for it in resp["items"] if it["index"].get("error")]
            log.warning("scratch index rejected %d event(s): %s", len(bad), str(bad[:1])[:300])
        try:
            # Each subscription's query is one *named* clause; a search carries a chunk of them
            # and each hit lists the clauses it matched (``matched_queries``). Thousands of
            # tiny searches would each pay a full query phase; chunks of named clauses do not.
            chunks = [searches[i : i + self.chunk] for i in range(0, len(searches), self.chunk)]
            body: list[dict[str, Any]] = []
            for chunk in chunks:
                ids = sorted({i for _, cand in chunk for i in cand})
                named = [
                    {"bool": {**subscription_query(sub, cand)["bool"], "_name": sub.id}}
                    for sub, cand in chunk
                ]
                body.append({"index": self.scratch})
                body.append(
                    {
                        "query": {
                            "bool": {
                                "filter": [{"ids": {"values": ids}}],
                                "should": named,
                                "minimum_should_match": 1,
                            }
                        },
                        "size": len(ids),
                        "_source": False,
                        "track_total_hits": False,
                    }
                )
            self.stats.queries += len(searches)
            res = await self.es.msearch(searches=body)
            out: list[tuple[Subscription, dict[str, Any]]] = []
            for chunk, r in zip(chunks, res["responses"], strict=True):
                if "error" in r:
                    # A stored query Elasticsearch refuses fails its chunk: retry one by one.
                    log.warning("match chunk failed (%s); isolating", str(r["error"])[:300])
                    out.extend(await self._one_by_one(chunk, by_id))
                    continue
                subs = {sub.id: sub for sub, _ in chunk}
                for h in r["hits"]["hits"]:
                    for name in h.get("matched_queries", ()):
                        if name in subs:
                            out.append((subs[name], by_id[h["_id"]]))
            return out
        finally:
            await self.es.bulk(
                operations=[{"delete": {"_index": self.scratch, "_id": i}} for i in needed]
            )

    async def _one_by_one(
        self, chunk: list[tuple[Subscription, list[str]]], by_id: dict[str, dict[str, Any]]
    ) -> list[tuple[Subscription, dict[str, Any]]]:
        body: list[dict[str, Any]] = []
        for sub, cand in chunk:
            body.append({"index": self.scratch})
            body.append(
                {
                    "query": subscription_query(sub, cand),
                    "size": len(cand),
                    "_source": False,
                    "track_total_hits": False,
                }
            )
        res = await self.es.msearch(searches=body)
        out: list[tuple[Subscription, dict[str, Any]]] = []
        for (sub, _), r in zip(chunk, res["responses"], strict=True):
            if "error" in r:
                log.warning("subscription %s query failed: %s", sub.id, str(r["error"])[:300])
                continue
            out.extend((sub, by_id[h["_id"]]) for h in r["hits"]["hits"])
        return out
