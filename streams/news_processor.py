"""The news stage without its engine: one ``news`` message in, the messages it becomes out.

Pure (no Kafka, Faust or Elasticsearch), so it can run on the worker's event loop or in a
classifier process beside it (``process_batch``); ``streams/news_agent.py`` sends the results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cpwatch import topics as t
from cpwatch.exceptions import RecordError
from cpwatch.internal_topics import STORY_INPUT
from cpwatch.records import NewsArticle, dumps
from cpwatch.settings import Settings
from streams.classifier import classify
from streams.holdings_news import HolderNames, HoldingStatement, extract_holdings, proposals

CLUSTER_KEY = b"stories"  # every event on the one story-input partition


def enrich(article: NewsArticle, now: datetime, names: HolderNames) -> dict[str, Any]:
    """The article as indexed: its fields, its classification, the holdings it states, when
    the pipeline saw it."""
    result = classify(article.title, article.text)
    statements = extract_holdings(article.title, article.text, names, article.published)
    return {
        **article.to_dict(),
        **result.to_dict(),
        "holdings": [s.to_dict() for s in statements],
        "ingested_at": now.isoformat(),
    }


@dataclass
class ArticleOutput:
    """What one news message becomes: messages to send in order, or a dead-letter reason."""

    messages: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # (topic, key, value)
    proposals: int = 0
    rejected: str | None = None
    seconds: float = 0.0  # time spent on it, for the processing-time histogram


def process_article(
    raw: bytes | None, now: datetime, names: HolderNames, settings: Settings
) -> ArticleOutput:
    """Classify one article: every article goes to ``articles``; an event also goes to story
    clustering, and its holdings statements become proposals (totals straight to
    ``holdings`` under auto-accept). Ids and keys are deterministic, so a replay adds nothing."""
    out = ArticleOutput()
    try:
        article = NewsArticle.parse(raw)
        doc = enrich(article, now, names)
    except RecordError as exc:
        out.rejected = str(exc)
        return out
    except Exception as exc:  # noqa: BLE001 - one bad article must not stop the stream
        out.rejected = f"classifier: {exc!r}"
        return out
    body = dumps(doc)
    out.messages.append((t.ARTICLES, article.id.encode(), body))
    if not doc["is_policy_event"]:
        return out
    out.messages.append((STORY_INPUT, CLUSTER_KEY, body))
    found = proposals(
        (HoldingStatement(**s) for s in doc["holdings"]),
        names,
        article_id=article.id,
        title=article.title,
        source_url=article.url or "",
        published=article.published or article.fetched_at,
    )
    for p in found:
        out.messages.append((t.HOLDINGS_PROPOSALS, p.id.encode(), p.to_bytes()))
        if settings.holdings_auto_accept == "total" and p.statement == "total":
            update = p.to_update(None)
            out.messages.append((t.HOLDINGS, update.key.encode(), update.to_bytes()))
    out.proposals = len(found)
    return out


@dataclass(frozen=True)
class NewsContext:
    """What ``process_article`` needs besides the message, built once per process."""

    names: HolderNames
    settings: Settings


_context: NewsContext | None = None


def init_process(registry_csv: str, settings: Settings) -> None:
    """Set up this process for ``process_batch`` (a pool initializer)."""
    global _context  # noqa: PLW0603 - one context per classifier process
    _context = NewsContext(HolderNames.from_csv_text(registry_csv), settings)


def process_batch(raws: list[bytes | None], now: datetime) -> list[ArticleOutput]:
    """``process_article`` over a batch, in order, each output timed."""
    if _context is None:
        raise RuntimeError("init_process was not called in this process")
    outputs = []
    for raw in raws:
        t0 = time.perf_counter()
        out = process_article(raw, now, _context.names, _context.settings)
        out.seconds = time.perf_counter() - t0
        outputs.append(out)
    return outputs
