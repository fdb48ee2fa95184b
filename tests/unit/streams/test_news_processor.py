"""The news stage's processor without engines: one message in, messages out (our sentences)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cpwatch import topics as t
from cpwatch.internal_topics import STORY_INPUT
from cpwatch.records import NewsArticle
from cpwatch.settings import Settings
from streams.holdings_news import HolderNames
from streams.news_processor import CLUSTER_KEY, process_article

NAMES = HolderNames.from_csv_text(
    "holder,kind,country,btc,as_of\nEl Salvador,state,SV,1,2024-01-01\n"
)
NOW = datetime(2025, 6, 1, tzinfo=UTC)
EVENT = NewsArticle(
    id="a-1",
    title="El Salvador adds bitcoin to its national reserve",
    text=(
        "The government of El Salvador said its strategic bitcoin reserve now totals "
        "6,100 BTC after new purchases by the treasury this week."
    ),
    published=datetime(2025, 5, 30, tzinfo=UTC),
)
OTHER = NewsArticle(id="a-2", title="Football club signs new striker", text="A transfer story.")


def topics_of(messages: list[tuple[str, bytes, bytes]]) -> list[str]:
    return [name for name, _, _ in messages]


def test_an_event_goes_to_articles_stories_and_proposals() -> None:
    out = process_article(EVENT.to_bytes(), NOW, NAMES, Settings())
    assert out.rejected is None
    assert topics_of(out.messages) == [t.ARTICLES, STORY_INPUT, t.HOLDINGS_PROPOSALS]
    assert out.messages[1][1] == CLUSTER_KEY
    doc = json.loads(out.messages[0][2])
    assert doc["is_policy_event"] and doc["id"] == "a-1"
    assert out.proposals == 1


def test_auto_accept_sends_a_stated_total_to_holdings() -> None:
    settings = Settings(holdings_auto_accept="total")
    out = process_article(EVENT.to_bytes(), NOW, NAMES, settings)
    assert topics_of(out.messages)[-1] == t.HOLDINGS
    assert json.loads(out.messages[-1][2])["btc"] == 6100


def test_a_non_event_goes_to_articles_only() -> None:
    out = process_article(OTHER.to_bytes(), NOW, NAMES, Settings())
    assert topics_of(out.messages) == [t.ARTICLES]
    assert json.loads(out.messages[0][2])["is_policy_event"] is False


def test_a_replay_sends_the_same_keys() -> None:
    first = process_article(EVENT.to_bytes(), NOW, NAMES, Settings())
    again = process_article(EVENT.to_bytes(), NOW, NAMES, Settings())
    assert first.messages == again.messages


def test_a_malformed_message_is_rejected_with_the_field() -> None:
    out = process_article(b'{"id": "x", "title": ""}', NOW, NAMES, Settings())
    assert out.messages == [] and out.rejected is not None and "title" in out.rejected
    assert process_article(None, NOW, NAMES, Settings()).rejected is not None
