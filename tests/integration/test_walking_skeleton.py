"""The whole chain on the real engines: producer → Kafka → Faust agent → Kafka → sink → ES."""

from __future__ import annotations

import json
import subprocess

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, KafkaProducer

from cpwatch import topics as t
from cpwatch.records import DeadLetter, NewsArticle
from cpwatch.settings import Settings
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


def test_article_flows_from_producer_to_search(
    kafka_settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    s = kafka_settings
    article = NewsArticle(
        id="skeleton-1",
        source="test-wire",
        title="Finance ministry drafts a bitcoin custody rule",
        text="The ministry published a draft rule for bitcoin custody by licensed banks.",
        published="2025-03-01T09:00:00Z",
    )
    producer = KafkaProducer(**s.kafka_client_kwargs())
    for _ in range(2):  # a replay must not duplicate the document
        producer.send(s.topic(t.NEWS), key=article.id.encode(), value=article.to_bytes())
    producer.send(s.topic(t.NEWS), key=b"broken", value=b'{"id": "x", "title": ')
    producer.flush()
    producer.close()

    es = Elasticsearch(**s.es_client_kwargs())
    alias = s.index("articles")

    def found() -> list[dict[str, object]]:
        if not es.indices.exists_alias(name=alias):
            return []
        es.indices.refresh(index=alias)
        return es.search(index=alias, q="custody")["hits"]["hits"]

    hits = wait_for(found, timeout=90)
    assert isinstance(hits, list) and len(hits) == 1
    assert hits[0]["_id"] == "skeleton-1"
    assert hits[0]["_source"]["title"] == article.title
    assert es.count(index=alias)["count"] == 1
    assert worker.poll() is None, "worker died"

    consumer = KafkaConsumer(
        s.topic(t.DEAD_LETTER),
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        **s.kafka_client_kwargs(),
    )
    dead = [DeadLetter.parse(m.value) for m in consumer]
    consumer.close()
    assert len(dead) == 1
    assert dead[0].stage == "classify-news"
    assert "Invalid JSON" in dead[0].reason
    assert dead[0].topic == s.topic(t.NEWS)
    assert json.loads(json.dumps(dead[0].payload)).startswith('{"id": "x"')
