"""Candidate selection for subscription matching (a presearcher over our own index).

When a subscription is saved, ``requirements`` reads its parsed query (``cpwatch.query``) as a
conjunction of clauses, each a set of *atoms* of which an event must contain one for the query
to match it: ``t:<token>`` (a token as Elasticsearch's events analyzer produces it, ``_analyze``
on the events index) or ``p:<3 chars>`` (a ``word*`` prefix, cut to its first three
lowercased characters). A term or phrase requires each of its tokens (multi-token words are
ANDed, phrases need all their words); AND concatenates its children's clauses; OR unions one
clause of each alternative, and has none if any alternative has none; NOT requires nothing.
The two most selective clauses (longest tokens; prefixes count as common) are stored as the
passes ``t1`` and ``t2`` of a document in ``<prefix>-match-candidates``, with the keyword
filters; ``ANY`` marks "no requirement". Two passes, not one, because a batch's events together
hold most of a vocabulary: one required word per subscription selects too much, two rarely do.

Per batch, each event's atoms are looked up in memory (``Presearcher``: the stored documents'
passes as atom -> subscription ids). A subscription is a candidate for an event only if both
passes hit, so the work that follows (verification in Elasticsearch) follows the matches, not
the number of subscribers. Extraction only ever adds candidates, never removes a match: every
clause is implied by the query (``tests/integration/test_candidate_matching.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch, Elasticsearch, NotFoundError

from cpwatch.query import And, Node, Not, Or, Phrase, Term, leaves, parse_query
from cpwatch.settings import Settings
from notify.subscriptions import EVENT_KEYWORDS, QUERY_FIELDS, Subscription

log = logging.getLogger(__name__)

VERSION = 3  # bump when extraction changes: stored candidates are then re-extracted
ANY = "\x00"  # no requirement; never a user value (keywords refuse control characters)
PASSES = ("t1", "t2")
MAX_EXACT = 8  # positive clauses an exact document may hold (beyond: verified in Elasticsearch)
PREFIX_KEY = 3  # = cpwatch.query.MIN_PREFIX_CHARS: every prefix query has at least these
MERGE_AFTER = 10_000  # documents stored at once after which the index is merged to one segment
ANALYZE_CHARS = 20_000  # per _analyze request: its output is capped at 10,000 tokens
FIELDS = tuple(f.split("^")[0] for f in QUERY_FIELDS)

Clause = frozenset[str]

CANDIDATE_PROPERTIES: dict[str, Any] = {
    "sid": {"type": "keyword"},
    "fp": {"type": "keyword"},
    **{p: {"type": "keyword"} for p in PASSES},
    **{k: {"type": "keyword"} for k in (*EVENT_KEYWORDS, "rule_types")},
    "exact": {"type": "boolean"},  # the candidate check is the whole query: no verification
    "neg": {"type": "keyword"},  # atoms that rule an event out (exact documents only)
    "min_severity": {"type": "float"},
}


# ---- extraction (pure) ----------------------------------------------------------------------


def _cost(clause: Clause) -> float:
    """How often a clause is expected to hit: short tokens are common, 3-char prefixes more."""
    return sum(0.5 if a.startswith("p:") else 1.0 / len(a) for a in clause)


def requirements(
    node: Node, words: Mapping[str, Sequence[str]], prefixes: Mapping[str, str | None]
) -> list[Clause]:
    """Clauses all implied by ``node``; ``words``: analysed tokens of each term or phrase text,
    ``prefixes``: each prefix text's key (None when it has no safe one)."""
    if isinstance(node, Term) and node.prefix:
        key = prefixes.get(node.text)
        return [frozenset({"p:" + key})] if key else []
    if isinstance(node, Term | Phrase):
        return [frozenset({"t:" + t}) for t in words.get(node.text, ())]
    if isinstance(node, Not):
        return []
    kids = [requirements(c, words, prefixes) for c in node.children]
    if isinstance(node, And):
        return [c for k in kids for c in k]
    if any(not k for k in kids):
        return []  # an alternative with no requirement: anything may match
    kids = [sorted(k, key=_cost) for k in kids]
    width = max(len(k) for k in kids)
    return [frozenset().union(*(k[min(j, len(k) - 1)] for k in kids)) for j in range(width)]


def passes(clauses: Iterable[Clause]) -> list[list[str]]:
    """The ``len(PASSES)`` cheapest distinct clauses, padded with ``[ANY]``."""
    best = sorted(set(clauses), key=lambda c: (_cost(c), sorted(c)))[: len(PASSES)]
    out = [sorted(c) for c in best]
    return out + [[ANY]] * (len(PASSES) - len(out))


def _key(sub: Subscription) -> tuple[Any, ...]:
    return (sub.query, sub.filters)


def fingerprint(sub: Subscription) -> str:
    f = sub.filters
    raw = [VERSION, sub.query, f.categories, f.countries, f.orgs, f.holders, f.rule_types]
    raw.append(f.min_severity)
    return hashlib.sha1(json.dumps(raw).encode(), usedforsecurity=False).hexdigest()


def texts_of(subs: Iterable[Subscription]) -> tuple[set[str], set[str]]:
    """(term and phrase texts, prefix texts) the subscriptions' queries need analysed."""
    words: set[str] = set()
    pre: set[str] = set()
    for sub in subs:
        tree = parse_query(sub.query) if sub.query else None
        for leaf in leaves(tree) if tree else ():
            (pre if isinstance(leaf, Term) and leaf.prefix else words).add(leaf.text)
    return words, pre


def _token(node: Node, words: Mapping[str, Sequence[str]]) -> str | None:
    """The one token of a plain word that analyses to exactly one token, else None."""
    if isinstance(node, Term) and not node.prefix and len(toks := words.get(node.text, ())) == 1:
        return toks[0]
    return None


def exact_form(
    node: Node, words: Mapping[str, Sequence[str]]
) -> tuple[list[Clause], set[str]] | None:
    """(positive clauses, forbidden atoms) when the query *is* "each clause hits and no
    forbidden atom occurs": ANDs of single-token words, ORs of them, NOTs of them. Then the
    candidate check is the match itself and Elasticsearch need not verify it (the percolator's
    "verified" extraction). None for anything else (phrases, prefixes, stop words, nesting)."""
    parts = node.children if isinstance(node, And) else (node,)
    pos: list[Clause] = []
    neg: set[str] = set()
    for part in parts:
        if isinstance(part, Not):
            if (tok := _token(part.child, words)) is None:
                return None
            neg.add("t:" + tok)
        elif isinstance(part, Or):
            toks = [_token(c, words) for c in part.children]
            if any(t is None for t in toks):
                return None
            pos.append(frozenset("t:" + t for t in toks if t))
        elif (tok := _token(part, words)) is not None:
            pos.append(frozenset({"t:" + tok}))
        else:
            return None
    if not pos or len(set(pos)) > MAX_EXACT:
        return None
    return pos, neg


def candidate_doc(
    sub: Subscription, words: Mapping[str, Sequence[str]], prefixes: Mapping[str, str | None]
) -> dict[str, Any]:
    tree = parse_query(sub.query) if sub.query else None
    clauses = requirements(tree, words, prefixes) if tree else []
    doc: dict[str, Any] = {"sid": sub.id, "fp": fingerprint(sub)}
    chosen = passes(clauses)
    doc.update(zip(PASSES, chosen, strict=True))
    form = exact_form(tree, words) if tree else None
    doc["exact"] = form is not None or tree is None  # no query: the filters are the match
    doc["neg"] = sorted(form[1]) if form else []
    # An exact query's clauses beyond the two passes (``a b c``), checked in memory: without
    # them such a query would need Elasticsearch's verification. Space-joined atoms (tokens
    # hold no spaces); unmapped, read from _source only.
    rest = set(form[0]) - {frozenset(c) for c in chosen} if form else set()
    doc["more"] = sorted(" ".join(sorted(c)) for c in rest)
    f = sub.filters
    for name in (*EVENT_KEYWORDS, "rule_types"):
        doc[name] = list(getattr(f, name)) or [ANY]
    doc["min_severity"] = f.min_severity
    return doc


def event_atoms(tokens: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for t in tokens:
        out.add("t:" + t)
        if len(t) >= PREFIX_KEY:
            out.add("p:" + t[:PREFIX_KEY])
    return out


@dataclass(frozen=True, slots=True)
class Entry:
    """What the matcher keeps of a candidate document, to place its hits on events."""

    passes: tuple[tuple[str, ...], ...]
    neg: tuple[str, ...]
    exact: bool
    events: bool = True  # no rule-type filter: rule-type subscriptions want alerts only
    more: tuple[tuple[str, ...], ...] = ()  # further clauses that must each hit (exact only)

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Entry:
        return cls(
            tuple(tuple(doc[p]) for p in PASSES),
            tuple(doc["neg"]),
            bool(doc["exact"]),
            ANY in doc.get("rule_types", [ANY]),
            tuple(tuple(c.split(" ")) for c in doc.get("more", ())),
        )


def admitted(entry: Entry, masks: dict[str, int], everyone: int) -> int:
    """The events of a group (bits) a candidate document admits: both passes and every further
    clause hit the event's atoms and none of its forbidden atoms occurs (``masks``: atom ->
    events holding it; filters are checked later, exactly, by ``matches_event``). The
    definition ``Presearcher`` implements with set operations (tests compare the two)."""
    bits = everyone
    for atoms in entry.passes:
        hit = 0
        for a in atoms:
            hit |= everyone if a == ANY else masks.get(a, 0)
        bits &= hit
    for atoms in entry.more:
        hit = 0
        for a in atoms:
            hit |= masks.get(a, 0)
        bits &= hit
    for a in entry.neg:
        bits &= ~masks.get(a, 0)
    return bits


class Presearcher:
    """The candidate documents' passes as an in-memory inverted index (atom -> subscription
    ids, per pass). A subscription is a candidate for an event when each pass holds ``ANY`` or
    an atom of the event, each further clause (``more``) an atom of the event, and none of its
    forbidden atoms occurs: ``admitted``, computed with set operations over the event's atoms
    instead of one check per (subscription, event).

    Searched here rather than in Elasticsearch: the matcher holds every document's passes in
    memory anyway, and one batch's ``_msearch`` over the candidate index was most of its time
    (~0.5 s per 2,000 events at 100,000 subscriptions, doubled under load), where these
    lookups take a few tens of microseconds per event."""

    def __init__(self) -> None:
        self._post: tuple[dict[str, set[str]], ...] = tuple({} for _ in PASSES)
        self._any: tuple[set[str], ...] = tuple(set() for _ in PASSES)
        self._always: set[str] = set()  # ANY in every pass: a candidate for every event
        self._neg: dict[str, frozenset[str]] = {}
        self._more: dict[str, tuple[frozenset[str], ...]] = {}
        self._entries: dict[str, Entry] = {}
        self.exact: set[str] = set()  # held ids whose candidate check is the query itself

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, sid: str, entry: Entry) -> None:
        if self._entries.get(sid) == entry:
            return
        self.drop(sid)
        if not entry.events:
            return  # never a candidate for an event
        self._entries[sid] = entry
        for i, atoms in enumerate(entry.passes):
            for a in atoms:
                (self._any[i] if a == ANY else self._post[i].setdefault(a, set())).add(sid)
        if all(ANY in atoms for atoms in entry.passes):
            self._always.add(sid)
        if entry.neg:
            self._neg[sid] = frozenset(entry.neg)
        if entry.more:
            self._more[sid] = tuple(frozenset(c) for c in entry.more)
        if entry.exact:
            self.exact.add(sid)

    def drop(self, sid: str) -> None:
        entry = self._entries.pop(sid, None)
        if entry is None:
            return
        for i, atoms in enumerate(entry.passes):
            for a in atoms:
                if a == ANY:
                    self._any[i].discard(sid)
                elif (ids := self._post[i].get(a)) is not None:
                    ids.discard(sid)
                    if not ids:
                        del self._post[i][a]
        self._always.discard(sid)
        self._neg.pop(sid, None)
        self._more.pop(sid, None)
        self.exact.discard(sid)

    def candidates(self, atoms: set[str]) -> set[str]:
        """The subscriptions an event holding ``atoms`` may match (filters not checked)."""
        hit: list[set[str]] = []
        for post in self._post:
            ids: set[str] = set()
            for a in atoms:
                if (found := post.get(a)) is not None:
                    ids |= found
            hit.append(ids)
        # Each pass hits through an atom or through ANY; with two passes:
        # (h1 | any1) & (h2 | any2) = h1 & h2 | h1 & any2 | any1 & h2 | any1 & any2.
        (h1, h2), (any1, any2) = hit, self._any
        out = (h1 & h2) | (h1 & any2) | (any1 & h2) | self._always
        neg, more = self._neg, self._more
        if neg or more:
            out = {
                s
                for s in out
                if not (s in neg and neg[s] & atoms)
                and not (s in more and not all(c & atoms for c in more[s]))
            }
        return out


# ---- analysis through Elasticsearch ---------------------------------------------------------


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2  # Elasticsearch offsets count UTF-16 units


def _chunks(texts: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    size = 0
    for t in texts:
        if out[-1] and size + len(t) > ANALYZE_CHARS:
            out.append([])
            size = 0
        out[-1].append(t)
        size += len(t) + 1
    return out


def _split(texts: list[str], tokens: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Tokens of one ``_analyze`` over an array, back to their texts (offsets made relative):
    text i's offsets start after the texts before it, each followed by an offset gap of one."""
    starts, pos = [], 0
    for t in texts:
        starts.append(pos)
        pos += _u16(t) + 1
    out: list[list[dict[str, Any]]] = [[] for _ in texts]
    i = 0
    for tok in tokens:
        while i + 1 < len(starts) and tok["start_offset"] >= starts[i + 1]:
            i += 1
        out[i].append({**tok, "start_offset": tok["start_offset"] - starts[i]})
    return out


async def analyze(
    es: AsyncElasticsearch, index: str, field: str, texts: list[str]
) -> list[list[str]]:
    """Each text's tokens, as ``index``'s analyzer for ``field`` produces them."""
    texts = [t if t.strip() else " " for t in texts]  # an empty text has no offset length

    async def one(chunk: list[str]) -> list[list[str]]:
        r = await es.indices.analyze(index=index, field=field, text=chunk)
        return [[t["token"] for t in toks] for toks in _split(chunk, r["tokens"])]

    parts = await asyncio.gather(*(one(c) for c in _chunks(texts) if c))
    return [toks for p in parts for toks in p]


def analyze_sync(es: Elasticsearch, index: str, field: str, texts: list[str]) -> list[list[str]]:
    texts = [t if t.strip() else " " for t in texts]
    out: list[list[str]] = []
    for chunk in _chunks(texts):
        if chunk:
            r = es.indices.analyze(index=index, field=field, text=chunk)
            out.extend([t["token"] for t in toks] for toks in _split(chunk, r["tokens"]))
    return out


def _prefix_key(tokens: list[dict[str, Any]]) -> str | None:
    """Lowercased start of a prefix, as Elasticsearch normalises ``word*``; None if unsure."""
    if tokens and tokens[0]["start_offset"] == 0 and len(tokens[0]["token"]) >= PREFIX_KEY:
        return str(tokens[0]["token"][:PREFIX_KEY])
    return None


def _prefix_request(chunk: list[str]) -> dict[str, Any]:
    # The standard tokenizer and lowercase filter are core parts on every cluster.
    return {"tokenizer": "standard", "filter": ["lowercase"], "text": chunk}


def _prefix_keys(chunk: list[str], tokens: list[dict[str, Any]]) -> dict[str, str | None]:
    return {t: _prefix_key(p) for t, p in zip(chunk, _split(chunk, tokens), strict=True)}


# ---- the candidate index --------------------------------------------------------------------


def analyzer_index(settings: Settings, exists: Callable[[str], bool]) -> str:
    """The events index's analyzer; the scratch index has the same mapping if events is absent."""
    events = settings.index("events")
    return events if exists(events) else settings.index("match-scratch")


def index_subscription(es: Elasticsearch, settings: Settings, sub: Subscription) -> None:
    """Extract and store one subscription's candidate document (the API calls this on save,
    before storing the subscription, so the matcher never sees it without it)."""
    index = analyzer_index(settings, lambda i: bool(es.indices.exists(index=i)))
    wtexts, ptexts = (sorted(s) for s in texts_of([sub]))
    words = dict(zip(wtexts, analyze_sync(es, index, "text", wtexts), strict=True))
    prefixes: dict[str, str | None] = {}
    if ptexts:
        r = es.indices.analyze(**_prefix_request(ptexts))
        prefixes = _prefix_keys(ptexts, r["tokens"])
    es.index(
        index=settings.index("match-candidates"),
        id=sub.id,
        document=candidate_doc(sub, words, prefixes),
        refresh="wait_for",
    )


def delete_subscription(es: Elasticsearch, settings: Settings, sub_id: str) -> None:
    try:
        es.delete(index=settings.index("match-candidates"), id=sub_id, refresh="wait_for")
    except NotFoundError:
        pass


class CandidateIndex:
    """Keeps ``<prefix>-match-candidates`` in step with the cached subscriptions and finds, per
    event of a batch, the subscriptions that may match it."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings) -> None:
        self.es, self.settings = es, settings
        self.alias = settings.index("match-candidates")
        # subscription id -> (query, filters) its stored document was extracted from
        self._synced: dict[str, tuple[Any, ...]] = {}
        self.presearcher = Presearcher()
        self._seen: object = None
        self._words: dict[str, tuple[str, ...]] = {}  # analysed texts, shared across subs
        self._prefixes: dict[str, str | None] = {}
        self._index: str | None = None
        self.hits = 0  # candidate documents returned, over all batches

    async def analyzer_index(self) -> str:
        if self._index is None:
            events = self.settings.index("events")
            found = await self.es.indices.exists(index=events)
            self._index = events if found else self.settings.index("match-scratch")
        return self._index

    def unsynced(self, subs: Mapping[str, Subscription]) -> list[Subscription]:
        """Subscriptions the index does not hold as they are (the last sync failed): they are
        matched the brute-force way meanwhile."""
        if subs is self._seen:
            return []
        return [s for s in subs.values() if self._synced.get(s.id) != _key(s)]

    async def sync(self, subs: Mapping[str, Subscription]) -> None:
        """Backfill or refresh candidate documents (subscriptions stored before this existed,
        by another version, or written straight to Elasticsearch). Cheap when nothing changed:
        runs only when ``subs`` is a new object (a cache reload)."""
        if subs is self._seen:
            return
        try:
            await self._sync(subs)
        except Exception as exc:  # noqa: BLE001 - retried next batch; unsynced ones brute-forced
            log.warning("candidate index sync failed (%r); retrying next batch", exc)
            return
        self._seen = subs

    async def _sync(self, subs: Mapping[str, Subscription]) -> None:
        for sid in [sid for sid in self._synced if sid not in subs]:  # deleted since
            del self._synced[sid]
            self.presearcher.drop(sid)
        stale = [s for s in subs.values() if self._synced.get(s.id) != _key(s)]
        for i in range(0, len(stale), 1000):
            chunk = stale[i : i + 1000]
            got = await self.es.options(ignore_status=404).mget(
                index=self.alias,
                ids=[s.id for s in chunk],
                source=["fp", "neg", "exact", "rule_types", "more", *PASSES],
            )
            have = {d["_id"]: d["_source"] for d in got.get("docs", []) if d.get("found")}
            todo = []
            for sub in chunk:
                doc = have.get(sub.id)
                if doc and doc.get("fp") == fingerprint(sub):
                    self.presearcher.put(sub.id, Entry.of(doc))  # stored by the API, or earlier
                else:
                    todo.append(sub)
            if todo:
                await self._store(todo)
            self._synced.update((s.id, _key(s)) for s in chunk)

    async def _store(self, subs: list[Subscription]) -> None:
        wtexts, ptexts = texts_of(subs)
        new_w = sorted(wtexts - self._words.keys())
        if new_w:
            toks = await analyze(self.es, await self.analyzer_index(), "text", new_w)
            self._words.update((w, tuple(t)) for w, t in zip(new_w, toks, strict=True))
        new_p = sorted(ptexts - self._prefixes.keys())
        for chunk in _chunks(new_p):
            if chunk:
                r = await self.es.indices.analyze(**_prefix_request(chunk))
                self._prefixes.update(_prefix_keys(chunk, r["tokens"]))
        ops: list[dict[str, Any]] = []
        for s in subs:
            ops.append({"index": {"_index": self.alias, "_id": s.id}})
            doc = candidate_doc(s, self._words, self._prefixes)
            ops.append(doc)
            self.presearcher.put(s.id, Entry.of(doc))
        for i in range(0, len(ops), 4000):
            resp = await self.es.bulk(operations=ops[i : i + 4000])
            if resp.get("errors"):
                raise RuntimeError(f"candidate index rejected documents: {str(resp)[:300]}")
        await self.es.indices.refresh(index=self.alias)
        if len(subs) >= MERGE_AFTER:
            # A candidate search looks up hundreds of terms in every segment: after a backfill
            # dozens of small segments made it 4x slower than one (measured at 100,000).
            await self.es.indices.forcemerge(index=self.alias, max_num_segments=1)

    async def event_tokens(self, events: list[dict[str, Any]]) -> list[set[str]]:
        """Every event's tokens over the searched fields: the batch analysed once, per field."""
        index = await self.analyzer_index()
        per_field = await asyncio.gather(
            *(analyze(self.es, index, f, [str(e.get(f) or "") for e in events]) for f in FIELDS)
        )
        return [set().union(*(field[i] for field in per_field)) for i in range(len(events))]

    async def find(self, events: list[dict[str, Any]]) -> tuple[list[set[str]], set[str]]:
        """Per event, the ids of the subscriptions that may match it (filters are checked
        exactly later, ``matches_event``); and the ids whose candidates are matches given
        their filters (exact documents)."""
        atoms = [event_atoms(t) for t in await self.event_tokens(events)]
        out = [self.presearcher.candidates(a) for a in atoms]
        self.hits += sum(len(c) for c in out)
        return out, self.presearcher.exact
