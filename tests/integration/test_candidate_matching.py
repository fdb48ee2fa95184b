"""The candidate path returns exactly the brute-force path's matches, on the real engine.

Random subscriptions (AND, OR via ``|``, phrases, prefixes, negation, keyword filters) and
random events go through ``EventMatcher.match`` (candidate index, then verification) and
``EventMatcher.match_brute_force`` (every subscription verified); the sets must be equal.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpwatch.query import QueryError, check_query
from cpwatch.settings import Settings
from notify.matcher import EventMatcher
from notify.subscriptions import EmailChannel, Filters, Subscription
from sinks.indices import ensure_indices

pytestmark = pytest.mark.integration

# Word forms that stem together (mining/mines), stop words, possessives, a hyphenated word.
WORDS = [
    "bitcoin", "mining", "mines", "reserve", "reserves", "IMF", "tax", "legal", "tender",
    "Salvador's", "El", "ban", "the", "stablecoin", "exchange", "ETF", "El-Salvador", "of",
]  # fmt: skip
COUNTRIES = ["US", "PK", "SV"]
CATEGORIES = ["reserve", "ban"]
_names = itertools.count()

# Plain words weigh most: queries made of them only are "exact" (no verification at all).
leaf = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(WORDS),
    st.sampled_from(WORDS),
    st.sampled_from([w for w in WORDS if len(w) >= 3]).flatmap(
        lambda w: st.integers(3, len(w)).map(lambda k: w[:k] + "*")
    ),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(lambda ws: f'"{" ".join(ws)}"'),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.lists(children, min_size=2, max_size=3)
    return st.one_of(
        pair.map(" ".join),
        pair.map(" AND ".join),
        pair.map(" | ".join),
        pair.map(lambda cs: "(" + " | ".join(cs) + ")"),
        children.map(lambda c: "-" + c if not c.startswith(("-", "(")) else "NOT " + c),
    )


queries = st.recursive(leaf, _combine, max_leaves=5).filter(lambda q: _valid(q))


def _valid(q: str) -> bool:
    try:
        check_query(q)
    except QueryError:
        return False
    return True


subscriptions = st.builds(
    lambda q, countries, cats, sev: Subscription(
        name=f"prop-{next(_names)}",
        query=q,
        filters=Filters(countries=countries, categories=cats, min_severity=sev),
        channel=EmailChannel(address="p@example.org"),
    ),
    st.one_of(st.none(), queries),
    st.lists(st.sampled_from(COUNTRIES), max_size=2, unique=True).map(tuple),
    st.lists(st.sampled_from(CATEGORIES), max_size=1).map(tuple),
    st.sampled_from([0.0, 0.0, 0.5]),
)

events = st.builds(
    lambda n, title, text, countries, cats, sev: {
        "id": f"ev-{n}",
        "title": " ".join(title),
        "text": " ".join(text),
        "countries": countries,
        "categories": cats,
        "severity": sev,
    },
    st.integers(0, 10**9),
    st.lists(st.sampled_from(WORDS), max_size=4),
    st.lists(st.sampled_from(WORDS), max_size=10),
    st.lists(st.sampled_from(COUNTRIES), max_size=2, unique=True),
    st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True),
    st.sampled_from([0.2, 0.7]),
)


def _pairs(matches: list[tuple[Subscription, dict[str, Any]]]) -> set[tuple[str, str]]:
    return {(s.id, e["id"]) for s, e in matches}


def test_candidates_equal_brute_force(kafka_settings: Settings) -> None:
    es = Elasticsearch(**kafka_settings.es_client_kwargs())  # type: ignore[arg-type]
    ensure_indices(es, kafka_settings, ["events", "match-candidates", "match-scratch"])
    es.close()
    loop = asyncio.new_event_loop()
    aes = AsyncElasticsearch(**kafka_settings.es_client_kwargs())  # type: ignore[arg-type]
    matcher = EventMatcher(aes, kafka_settings)
    seen = {"examples": 0, "matches": 0}

    @settings(
        max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        subs=st.lists(subscriptions, min_size=1, max_size=8),
        evs=st.lists(events, min_size=1, max_size=6, unique_by=lambda e: e["id"]),
    )
    def check(subs: list[Subscription], evs: list[dict[str, Any]]) -> None:
        by_id = {s.id: s for s in subs}
        ours = loop.run_until_complete(matcher.match(evs, by_id))
        brute = loop.run_until_complete(matcher.match_brute_force(evs, by_id))
        assert _pairs(ours) == _pairs(brute), [s.query for s in subs]
        seen["examples"] += 1
        seen["matches"] += len(brute)

    try:
        check()
    finally:
        loop.run_until_complete(aes.close())
        loop.close()
    assert seen["matches"] > 0  # the generators do produce matches
