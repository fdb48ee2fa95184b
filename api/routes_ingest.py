"""``POST /api/ingest/news``: push articles over HTTP; validated, then produced to ``news``.

Answers 202 only after Kafka acknowledged every article (the producer is flushed per request),
so a client that got 202 may forget the articles. Writes need a bearer token. All or nothing:
every article is validated and measured against the producer's ``max_request_size`` before
the first one is queued, so a 413 for article 7 means articles 0-6 were not sent either.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException

from api.routes_subscriptions import AuthDep, SettingsDep
from cpwatch import topics
from cpwatch.exceptions import CpwatchError, RecordError
from cpwatch.settings import Settings
from producers.fields import FieldError
from producers.kafka import TUNING, Producer
from producers.news_jsonl import article_from_dict

MAX_ARTICLES = 500
router = APIRouter(prefix="/api/ingest", tags=["ingest"])
_lock = threading.Lock()
_producers: dict[str, Producer] = {}


def max_record_bytes(producer: Producer) -> int:
    """The producer's ``max_request_size``: kafka-python refuses a larger record at send(),
    after the records before it were queued."""
    from kafka import KafkaProducer

    client = getattr(producer, "_client", None)  # the wrapped KafkaProducer
    config = getattr(client, "config", None) or {}
    default = TUNING.get("max_request_size", KafkaProducer.DEFAULT_CONFIG["max_request_size"])
    return int(config.get("max_request_size", default))


def record_bytes(key: bytes, value: bytes) -> int:
    """A record's size as the producer measures it (v2 record batch, no headers)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, []))


def _oversized(index: int, item: dict[str, Any], size: int, limit: int) -> HTTPException:
    """413 naming the article and its largest field (the one to shorten)."""
    sizes = {k: len(str(v).encode()) for k, v in item.items()}
    field = max(sizes, key=sizes.__getitem__) if sizes else "?"
    return HTTPException(
        413,
        f"article {index}: {size} bytes serialised, over the {limit}-byte record limit;"
        f" largest field: {field} ({sizes.get(field, 0)} bytes). Nothing was queued.",
    )


def _producer(settings: Settings) -> Producer:
    """One long-lived producer per bootstrap address (connections are costly)."""
    with _lock:
        key = settings.kafka_bootstrap + "|" + settings.topic_prefix
        if key not in _producers:
            _producers[key] = Producer(settings, client_id="cpwatch-api-ingest")
        return _producers[key]


@router.post("/news", status_code=202)
def ingest_news(
    settings: SettingsDep,
    _who: AuthDep,
    body: Annotated[dict[str, Any] | list[dict[str, Any]], Body()],
) -> dict[str, Any]:
    """Accept one article object or a list of up to 500 (fields as in the JSONL replay)."""
    items = body if isinstance(body, list) else [body]
    if not 1 <= len(items) <= MAX_ARTICLES:
        raise HTTPException(422, f"send 1 to {MAX_ARTICLES} articles, not {len(items)}")
    records: list[tuple[str, bytes]] = []
    for i, item in enumerate(items):
        try:
            article = article_from_dict(item)
        except (FieldError, RecordError) as exc:
            raise HTTPException(422, f"article {i}: {exc}") from exc
        records.append((article.id, article.to_bytes()))
    producer = _producer(settings)
    limit = max_record_bytes(producer)
    for i, (key, payload) in enumerate(records):
        if (size := record_bytes(key.encode(), payload)) > limit:
            raise _oversized(i, items[i], size, limit)
    with _lock:  # one request's flush must not wait on another's records
        try:
            for key, payload in records:
                producer.send(topics.NEWS, key, payload)
            producer.flush()
        except CpwatchError as exc:
            raise HTTPException(503, f"Kafka did not acknowledge: {exc}") from exc
    return {"accepted": len(records), "ids": [key for key, _ in records]}
