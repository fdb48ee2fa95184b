"""The Elasticsearch sink on the real engines: ids, rejections, outages, time-series indices."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, KafkaProducer

from cpwatch import topics as t
from cpwatch.records import DeadLetter
from cpwatch.settings import Settings
from sinks.indices import ensure_indices, monthly_index, prune_time_series
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


def _doc(i: int, published: str = "2025-05-01T00:00:00Z") -> dict[str, object]:
    return {
        "id": f"doc-{i}",
        "title": f"Central bank note {i}",
        "text": "bitcoin rules",
        "published": published,
        "is_policy_event": False,
    }


def _send(s: Settings, docs: list[dict[str, object]]) -> None:
    producer = KafkaProducer(**s.kafka_client_kwargs())
    for d in docs:
        producer.send(s.topic(t.ARTICLES), key=str(d["id"]).encode(), value=json.dumps(d).encode())
    producer.flush()
    producer.close()


def _count(es: Elasticsearch, alias: str) -> int:
    if not es.indices.exists_alias(name=alias):
        return 0
    es.indices.refresh(index=alias)
    return int(es.count(index=alias)["count"])


def _dead_letters(s: Settings) -> list[DeadLetter]:
    consumer = KafkaConsumer(
        s.topic(t.DEAD_LETTER),
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
        **s.kafka_client_kwargs(),
    )
    out = [DeadLetter.parse(m.value) for m in consumer]
    consumer.close()
    return out


def test_rejected_document_is_dead_lettered_and_batch_indexed(
    kafka_settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    s = kafka_settings
    docs = [_doc(i) for i in range(20)]
    docs[7] = _doc(7, published="not a date")  # the `published` date field refuses it
    _send(s, docs + docs[:5])  # replays of five documents must not add documents
    es = Elasticsearch(**s.es_client_kwargs())
    alias = s.index("articles")
    wait_for(lambda: _count(es, alias) == 19, timeout=90)
    dead = wait_for(lambda: [d for d in _dead_letters(s) if d.stage == "sink-es"], timeout=30)
    assert isinstance(dead, list) and len(dead) == 1
    assert "doc-7" in dead[0].payload and "published" in dead[0].reason
    # It names where the record came from, so an operator can find and replay it.
    assert dead[0].topic == s.topic(t.ARTICLES)
    assert dead[0].partition is not None and dead[0].offset is not None
    time.sleep(2)  # anything late (a duplicate) would show now
    assert _count(es, alias) == 19
    assert not es.exists(index=alias, id="doc-7")


def test_elasticsearch_outage_loses_and_duplicates_nothing(
    stack: Settings, kafka_settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    from deploy.stack import Stack

    s = kafka_settings
    es = Elasticsearch(**s.es_client_kwargs())
    alias = s.index("articles")
    _send(s, [_doc(i) for i in range(300)])
    wait_for(lambda: _count(es, alias) == 300, timeout=90)

    engines = Stack(stack)
    engines.stop("elasticsearch")
    try:
        _send(s, [_doc(i) for i in range(300, 1000)])  # arrives while Elasticsearch is down
        time.sleep(30)
        assert worker.poll() is None, "the worker must ride out the outage"
    finally:
        engines.up()
    wait_for(lambda: _count(es, alias) == 1000, timeout=180)
    time.sleep(3)
    assert _count(es, alias) == 1000
    assert not [d for d in _dead_letters(s) if d.stage == "sink-es"]


def test_valuations_roll_into_monthly_indices_and_old_months_are_pruned(
    kafka_settings: Settings,
) -> None:
    s = kafka_settings
    es = Elasticsearch(**s.es_client_kwargs())
    ensure_indices(es, s, ["treasury-valuations"])
    months = ["2025-01-15T00:00:00Z", "2025-02-15T00:00:00Z", "2025-03-15T00:00:00Z"]
    for ts in months:
        es.index(
            index=monthly_index(s, "treasury-valuations", ts),
            id=f"h|{ts[:16]}",
            document={"holder": "h", "ts": ts, "value_usd": 1.0},
            refresh=True,
        )
    alias = s.index("treasury-valuations")
    assert es.count(index=alias)["count"] == 3
    dropped = prune_time_series(es, s, "treasury-valuations", keep_months=1, today="2025-03-20")
    assert dropped == [monthly_index(s, "treasury-valuations", months[0])]
    es.indices.refresh(index=alias)
    assert es.count(index=alias)["count"] == 2


def test_alias_migrates_to_a_new_index_version_without_losing_documents(
    kafka_settings: Settings,
) -> None:
    from sinks.indices import TEMPLATE_VERSION, concrete_index, migrate

    s = kafka_settings
    es = Elasticsearch(**s.es_client_kwargs())
    ensure_indices(es, s, ["articles"])
    alias = s.index("articles")
    for i in range(25):
        es.index(index=alias, id=f"m-{i}", document=_doc(i))
    es.indices.refresh(index=alias)
    nxt = TEMPLATE_VERSION + 1
    new = migrate(es, s, "articles", version=nxt)
    assert new == f"{alias}-v{nxt}"
    assert list(es.indices.get_alias(name=alias)) == [new]
    assert not es.indices.exists(index=concrete_index(s, "articles"))
    assert es.count(index=alias)["count"] == 25
    es.index(index=alias, id="after", document=_doc(99), refresh=True)  # writes follow the alias
    assert es.exists(index=new, id="after")
    assert migrate(es, s, "articles", version=nxt) == new  # re-running is harmless
