"""Match a batch of policy events against the subscriptions: cost follows the matches.

Two steps per batch (this distribution has no ``percolator`` module, so we build on search):

1. *Candidates* (``notify.candidates``): the batch's text is analysed once and an in-memory
   index of the candidate documents (``Presearcher``, loaded from
   ``<prefix>-match-candidates``) gives, per event, the subscriptions whose required terms
   the event holds; their keyword filters are then checked exactly. Usually a handful per
   event, whatever the number of subscribers.
2. *Verification*, only for those pairs, as before: the events concerned are indexed into a
   scratch index (``<prefix>-match-scratch``, the events mapping, so the same analyzer as
   search), one ``_msearch`` runs each candidate's ``event_query`` plus filters restricted to
   its candidate events (named clauses, 500 per search), then the scratch documents are
   deleted (bulk deletes by id: ``_delete_by_query`` lives in the absent ``reindex`` module).
   A candidate with no query is a match already (its filters were checked exactly).

``match_brute_force`` is the previous method (every subscription verified per batch), kept as
the reference for the property test and the benchmark, and used for subscriptions the
candidate index does not hold yet. Subscriptions are read from ``<prefix>-subscriptions`` with
a bounded search (``search_after`` pages, at most ``max_subscriptions``) and cached;
``SubscriptionCache.get`` reloads them when the cache is older than ``refresh_s``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch

from cpwatch.settings import Settings
from notify.candidates import CandidateIndex
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
        self._version: tuple[int, ...] | None = None  # the index's write counters at last load
        self.invalid = 0  # documents that no longer validate (skipped, logged)
        self.loads = 0  # full loads done (a period without writes costs none)

    async def get(self, *, force: bool = False) -> dict[str, Subscription]:
        """The set as loaded at most ``refresh_s`` ago. Until a first load succeeded, a failed
        one raises: an empty set would match every event to nobody and lose its notifications
        (the caller waits the cluster out, ``notify.es_retry``)."""
        due = time.monotonic() - self._loaded_at >= self.refresh_s
        if force or due or self.loads == 0:
            # Stamped before loading: once a set is held, a failed reload waits a full period
            # instead of sending every call back to an unavailable cluster.
            self._loaded_at = time.monotonic()
            try:
                version = await self._version_or_none()
                if force or version is None or version != self._version:
                    self._subs = await self.load()
                    self.loads += 1
                    self._version = version
            except Exception as exc:
                if self.loads == 0:
                    raise
                log.warning("subscriptions reload failed (%r); keeping %d", exc, len(self._subs))
        return self._subs

    async def _version_or_none(self) -> tuple[int, ...] | None:
        try:
            return await self._index_version()
        except Exception as exc:  # noqa: BLE001 - unknown: load as before, and report its error
            log.debug("subscriptions index stats unavailable: %r", exc)
            return None

    async def _index_version(self) -> tuple[int, ...] | None:
        """Counters that move on every write and delete to the subscriptions index (one
        stats call): a 100,000-subscription reload takes seconds, so skip it when nothing
        was written. Refresh counters are left out: Elasticsearch also counts its own
        scheduled and flush refreshes there, which would force reloads of an unchanged set."""
        stats = await self.es.options(ignore_status=404).indices.stats(
            index=self.alias, metric=["indexing"]
        )
        total = stats.get("_all", {}).get("primaries", {})
        if not total:
            return None
        idx = total.get("indexing", {})
        return (int(idx.get("index_total", 0)), int(idx.get("delete_total", 0)))

    async def fetch(self, sub_id: str) -> Subscription | None:
        """One subscription by id, straight from Elasticsearch (a new one the cache has not
        loaded yet), without reloading the whole set; None if it does not exist."""
        resp = await self.es.options(ignore_status=404).get(index=self.alias, id=sub_id)
        if not resp.get("found"):
            return None
        try:
            sub = Subscription.from_es_doc(resp["_source"])
        except ValueError as exc:
            log.warning("subscription %s invalid, skipped: %s", sub_id, exc)
            return None
        self._subs[sub.id] = sub
        return sub

    async def load(self) -> dict[str, Subscription]:
        # Writes counted in the version but not yet refreshed would be missed by the
        # search, and no later counter move would bring them back: refresh first.
        await self.es.options(ignore_status=(403, 404)).indices.refresh(index=self.alias)
        subs: dict[str, Subscription] = {}
        after: list[Any] | None = None
        while len(subs) < self.max:
            kw: dict[str, Any] = {"search_after": after} if after else {}
            resp = await self.es.options(ignore_status=404).search(
                index=self.alias,
                size=min(PAGE, self.max - len(subs)),
                # A unique keyword, not _doc: merges renumber _doc between pages, and a
                # 100,000-subscription load lost 12,000 of them to that.
                sort=[{"id": {"order": "asc", "unmapped_type": "keyword"}}],
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


class SubscriptionLookup:
    """Subscriptions by id, each fetched on first use and kept ``refresh_s`` (the delivery
    agent's view). Deliveries name their subscription, so holding the whole set, as the
    matcher must, would cost the worker a second copy of it (hundreds of MB at 100,000) and
    a full reload, in the event loop, on every write to the subscriptions index."""

    def __init__(
        self,
        es: AsyncElasticsearch,
        settings: Settings,
        *,
        refresh_s: float | None = None,
        max_size: int = 10_000,
    ) -> None:
        self.es = es
        self.alias = settings.index("subscriptions")
        self.refresh_s = settings.subscriptions_refresh_s if refresh_s is None else refresh_s
        self.max_size = max_size
        self._held: OrderedDict[str, tuple[float, Subscription]] = OrderedDict()
        self.fetches = 0

    async def get(self, sub_id: str) -> Subscription | None:
        """The subscription as stored at most ``refresh_s`` ago; None if it does not exist
        (not remembered: a subscription created meanwhile is found next time)."""
        held = self._held.get(sub_id)
        if held is not None and time.monotonic() - held[0] < self.refresh_s:
            self._held.move_to_end(sub_id)
            return held[1]
        self.fetches += 1
        resp = await self.es.options(ignore_status=404).get(index=self.alias, id=sub_id)
        if not resp.get("found"):
            self._held.pop(sub_id, None)
            return None
        try:
            sub = Subscription.from_es_doc(resp["_source"])
        except ValueError as exc:
            log.warning("subscription %s invalid, skipped: %s", sub_id, exc)
            return None
        self._held[sub_id] = (time.monotonic(), sub)
        self._held.move_to_end(sub_id)
        while len(self._held) > self.max_size:
            self._held.popitem(last=False)
        return sub


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
    candidates: int = 0  # (subscription, event) pairs the candidate index proposed


Pair = tuple[Subscription, dict[str, Any]]


class EventMatcher:
    """``match(events, subs)`` -> ``[(subscription, event), ...]``: candidates, then checks."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings, *, chunk: int = 500) -> None:
        self.es = es
        self.chunk = chunk  # named subscription clauses per search in the _msearch
        self.scratch = settings.index("match-scratch")
        self.candidates = CandidateIndex(es, settings)
        self.stats = MatchStats()

    async def match(
        self, events: list[dict[str, Any]], subs: dict[str, Subscription]
    ) -> list[Pair]:
        """Pass the same ``subs`` object while it is unchanged: a new one triggers a sync."""
        if not events or not subs:
            return []
        await self.candidates.sync(subs)
        per_event, exact = await self.candidates.find(events)  # in memory, after _analyze
        self.stats.batches += 1
        self.stats.events += len(events)
        ids = self._ids(events)
        by_id = dict(zip(ids, events, strict=True))
        cands: dict[str, list[str]] = {}
        for i, found in zip(ids, per_event, strict=True):
            for sid in found:
                if sid in subs:
                    cands.setdefault(sid, []).append(i)
        self.stats.candidates += sum(len(c) for c in cands.values())
        out: list[Pair] = []
        pending: list[tuple[Subscription, list[str]]] = []
        for sid, cand in cands.items():
            sub = subs[sid]
            if sid in exact:  # the candidate check was the query itself: filters remain
                out.extend((sub, by_id[i]) for i in cand if sub.matches_event(by_id[i]))
            else:
                pending.append((sub, cand))
        # Not yet in the candidate index (a failed sync): every event is their candidate.
        pending += [(s, ids) for s in self.candidates.unsynced(subs)]
        out += await self._verify(pending, by_id)
        self.stats.matches += len(out)
        return out

    async def match_brute_force(
        self, events: list[dict[str, Any]], subs: dict[str, Subscription] | list[Subscription]
    ) -> list[Pair]:
        """The reference: every subscription verified against the whole batch."""
        subs_list = list(subs.values()) if isinstance(subs, dict) else list(subs)
        if not events or not subs_list:
            return []
        self.stats.batches += 1
        self.stats.events += len(events)
        ids = self._ids(events)
        by_id = dict(zip(ids, events, strict=True))
        out = await self._verify([(s, ids) for s in subs_list], by_id)
        self.stats.matches += len(out)
        return out

    @staticmethod
    def _ids(events: list[dict[str, Any]]) -> list[str]:
        token = uuid.uuid4().hex  # unique per batch: concurrent matchers share the scratch index
        return [f"{token}-{i}" for i in range(len(events))]

    async def _verify(
        self, pending: list[tuple[Subscription, list[str]]], by_id: dict[str, dict[str, Any]]
    ) -> list[Pair]:
        out: list[Pair] = []
        searches: list[tuple[Subscription, list[str]]] = []
        for sub, ids in pending:
            cand = [i for i in ids if sub.matches_event(by_id[i])]  # pure filters, exact
            if not cand:
                continue
            if sub.query:
                searches.append((sub, cand))
            else:
                out.extend((sub, by_id[i]) for i in cand)
        if searches:
            out.extend(await self._search(searches, by_id))
        return out

    async def _search(
        self, searches: list[tuple[Subscription, list[str]]], by_id: dict[str, dict[str, Any]]
    ) -> list[tuple[Subscription, dict[str, Any]]]:
        needed = sorted({i for _, cand in searches for i in cand})
        ops: list[dict[str, Any]] = []
        for i in needed:
            ops.append({"index": {"_index": self.scratch, "_id": i}})
            ops.append(by_id[i])
        # An explicit refresh: the scratch index is tiny, and waiting for the next scheduled
        # one (100 ms) would be most of an idle batch's latency.
        resp = await self.es.bulk(operations=ops, refresh=True)
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
