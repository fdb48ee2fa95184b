"""Articles through Kafka, the classifier agent and the sinks, on the real engines."""

from __future__ import annotations

import json
import subprocess

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, KafkaProducer

from cpwatch import topics as t
from cpwatch.records import NewsArticle
from cpwatch.settings import Settings
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

# Our own wording of a seed-like story, twice (two outlets), plus an unrelated non-event.
SEED_TEXT = (
    "Pakistan's Crypto Council signed a letter of intent with El Salvador's Bitcoin Office in "
    "San Salvador on Tuesday, after its chief met President Nayib Bukele to discuss public-sector "
    "bitcoin adoption. Pakistan, which is under a $7 billion IMF loan programme, also wants to "
    "build a strategic bitcoin reserve: the finance ministry would hold bitcoin in a national "
    "reserve rather than sell it. The International Monetary Fund has objected to "
    "Islamabad's plan to allocate 2,000 megawatts of surplus electricity to bitcoin mining and "
    "AI data centres, saying power subsidies for miners breach the programme's terms."
)
COPY_TEXT = (
    "On Tuesday Pakistan's Crypto Council signed a letter of intent with El Salvador's Bitcoin "
    "Office in San Salvador after its chief met President Nayib Bukele to talk about public-sector "
    "bitcoin adoption. Pakistan, under a $7 billion IMF loan programme, also wants to build a "
    "strategic bitcoin reserve: the finance ministry would hold bitcoin in a national reserve "
    "rather than sell it. The International Monetary Fund objected to Islamabad's plan to "
    "allocate 2,000 megawatts of surplus electricity to bitcoin mining and AI data centres, "
    "saying power subsidies for miners breach the programme's terms."
)


def test_seed_story_becomes_one_event(
    kafka_settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    s = kafka_settings
    articles = [
        NewsArticle(
            id="seed-a",
            source="wire-a",
            title="Pakistan and El Salvador sign bitcoin letter of intent as IMF blocks mining power plan",
            text=SEED_TEXT,
            published="2025-05-28T10:00:00Z",
        ),
        NewsArticle(
            id="seed-b",
            source="wire-b",
            title="Pakistan, El Salvador sign bitcoin letter of intent; IMF blocks mining power plan",
            text=COPY_TEXT,
            published="2025-05-28T12:00:00Z",
        ),
        NewsArticle(
            id="market-1",
            source="wire-a",
            title="Bitcoin slips below $90,000 as traders take profit",
            text="Bitcoin fell 3% on Tuesday as traders booked profits after a rally; analysts watch the $88,000 support level.",
            published="2025-05-28T13:00:00Z",
        ),
    ]
    producer = KafkaProducer(**s.kafka_client_kwargs())
    for a in articles:
        producer.send(s.topic(t.NEWS), key=a.id.encode(), value=a.to_bytes())
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        s.topic(t.POLICY_EVENTS),
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
        **s.kafka_client_kwargs(),
    )
    events: list[dict[str, object]] = []

    def both_copies() -> bool:
        events.extend(json.loads(m.value) for m in consumer)
        return len(events) >= 2

    wait_for(both_copies, timeout=90)
    consumer.close()
    first = next(e for e in events if e["id"] == "seed-a")
    assert set(first["categories"]) >= {"cooperation", "multilateral", "mining_energy", "reserve"}
    assert set(first["countries"]) >= {"PK", "SV"}
    amounts = {(a["unit"], a["value"]) for a in first["amounts"]}
    assert ("USD", 7e9) in amounts and ("MW", 2000.0) in amounts
    clusters = {e["cluster_id"] for e in events}
    # The cluster is named after whichever copy the clusterer saw first.
    assert len(clusters) == 1 and clusters <= {"seed-a", "seed-b"}, "two copies, one story"
    (cluster,) = clusters
    assert all(e["id"] != "market-1" for e in events)

    es = Elasticsearch(**s.es_client_kwargs())

    def indexed() -> bool:
        es.indices.refresh(index=[s.index("events"), s.index("articles")])
        return (
            es.count(index=s.index("articles"))["count"] == 3
            and es.count(index=s.index("events"))["count"] == 1
        )

    wait_for(indexed, timeout=60)
    doc = es.get(index=s.index("events"), id=cluster)["_source"]
    assert set(doc["members"]) == {"seed-a", "seed-b"}
    market = es.get(index=s.index("articles"), id="market-1")["_source"]
    assert market["is_policy_event"] is False
