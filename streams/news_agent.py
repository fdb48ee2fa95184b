"""Faust agent: ``news`` → parse → enrich → ``articles`` (every article, for search)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faust

from cpwatch import topics as t
from cpwatch.exceptions import RecordError
from cpwatch.records import NewsArticle, dumps
from cpwatch.settings import Settings
from streams.app import Topics
from streams.deadletter import dead_letter

STAGE = "classify-news"


def enrich(article: NewsArticle, now: datetime) -> dict[str, Any]:
    """The article as indexed: its fields plus when the pipeline saw it."""
    return {**article.to_dict(), "ingested_at": now.isoformat()}


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    @app.agent(topics[t.NEWS], name=STAGE, concurrency=1)
    async def classify_news(stream: faust.StreamT) -> None:
        async for event in stream.events():
            raw = event.value
            try:
                article = NewsArticle.parse(raw)
                doc = enrich(article, datetime.now(UTC))
            except RecordError as exc:
                await dead_letter(topics[t.DEAD_LETTER], STAGE, str(exc), event, raw)
                continue
            await topics[t.ARTICLES].send(key=article.id.encode(), value=dumps(doc))
