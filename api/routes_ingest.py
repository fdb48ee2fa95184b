"""``POST /api/ingest/news``: push articles over HTTP; validated, then produced to ``news``.

Answers 202 only after Kafka acknowledged every article (the producer is flushed per request),
so a client that got 202 may forget the articles. Writes need a bearer token.
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
from producers.kafka import Producer
from producers.news_jsonl import article_from_dict

MAX_ARTICLES = 500
router = APIRouter(prefix="/api/ingest", tags=["ingest"])
_lock = threading.Lock()
_producers: dict[str, Producer] = {}


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
    articles = []
    for i, item in enumerate(items):
        try:
            articles.append(article_from_dict(item))
        except (FieldError, RecordError) as exc:
            raise HTTPException(422, f"article {i}: {exc}") from exc
    producer = _producer(settings)
    with _lock:  # one request's flush must not wait on another's records
        try:
            for a in articles:
                producer.send(topics.NEWS, a.id, a)
            producer.flush()
        except CpwatchError as exc:
            raise HTTPException(503, f"Kafka did not acknowledge: {exc}") from exc
    return {"accepted": len(articles), "ids": [a.id for a in articles]}
