"""The worker's committed story-input offset moved past policy events it never clustered, and
no later message came on that partition: the clusterer's saved input position and the stall
nudge make it read them anyway, so each still becomes a policy event.

This is what Faust's gap handling can leave after a restart or a rebalance: it commits past
records it never delivered, and when they were the partition's last ones nothing reveals the
hole (runtime/positions.py, runtime/nudge.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer

from cpwatch import topics as t
from cpwatch.internal_topics import STORY_INPUT, internal_topic
from cpwatch.records import NewsArticle
from cpwatch.settings import Settings
from producers.kafka import Producer
from streams.holdings_news import HolderNames
from streams.news_processor import process_article
from tests.conftest import wait_for
from tests.faults.conftest import Worker, articles, commit_to_end, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SEED = 20261203
BEFORE, SKIPPED = 30, 12


def story_bodies(s: Settings, batch: list[NewsArticle]) -> list[tuple[str, bytes]]:
    """(article id, story-input message) for each policy event of ``batch``, exactly as the
    news agent would write it."""
    names = HolderNames.from_csv_text(s.holdings_registry_path.read_text(encoding="utf-8"))
    out = []
    for a in batch:
        result = process_article(a.to_bytes(), datetime.now(UTC), names, s)
        out += [(a.id, v) for name, _, v in result.messages if name == STORY_INPUT]
    return out


def event_ids(s: Settings) -> set[str]:
    """Article ids on the policy-events topic (one event per clustered article)."""
    return {json.loads(v)["id"] for v in read_topic(s, t.POLICY_EVENTS, idle_ms=1500) if v}


def test_story_input_committed_past_is_still_clustered(
    kafka_settings: Settings, restartable_worker: Worker
) -> None:
    s, w = kafka_settings, restartable_worker
    first = articles(BEFORE, SEED)
    w.start()
    with Producer(s) as p:
        for a in first:
            p.send(t.NEWS, a.id, a)
    before = {i for i, _ in story_bodies(s, first)}
    assert before, "the sample news holds policy events"
    wait_for(lambda: before <= event_ids(s), timeout=240, interval=1.0, context=w.tail)
    w.stop()  # graceful: the group is left empty, so its offsets can be altered

    # Policy events the news agent had written, then a commit past them: as if Faust had
    # committed over records it dropped. Nothing is sent after them.
    skipped = story_bodies(s, articles(SKIPPED, SEED + 1))
    assert skipped
    topic = internal_topic(s, STORY_INPUT)
    producer = KafkaProducer(**s.kafka_client_kwargs())
    try:
        for _, body in skipped:
            producer.send(topic, key=b"stories", value=body, partition=0)
        producer.flush()
    finally:
        producer.close()
    commit_to_end(s, topic)

    w.start()
    want = {i for i, _ in skipped}
    wait_for(lambda: want <= event_ids(s), timeout=240, interval=2.0, context=w.tail)
    log = w.log_path.read_text(errors="replace")
    assert "cluster-stories: " in log and "nudged" in log, w.tail()
    refilled = [line for line in log.splitlines() if "cluster-stories: input" in line]
    assert refilled, w.tail()
