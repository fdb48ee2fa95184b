"""Faust agents: ``news`` → classify → ``articles`` (every article) and, for events,
near-duplicate grouping → ``policy-events`` keyed by story cluster.

Copies of one story arrive under different article ids, hence on different partitions, so
events are re-keyed onto one internal partition where a single bounded clusterer sees them
all (news volumes are small; classification, the costly part, stays parallel).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.exceptions import RecordError
from cpwatch.internal_topics import STORY_INPUT, internal_topic
from cpwatch.records import NewsArticle, dumps
from cpwatch.settings import Settings
from cpwatch.state_versions import StateVersionError
from runtime.deadletter import dead_letter
from runtime.faust_app import Topics
from runtime.nudge import NUDGE
from runtime.position_table import PositionTable
from runtime.table_state import apply_writes, changelog_ready, read_record, stop_worker
from streams.classifier import classify
from streams.holder_links import HolderLinker
from streams.holdings_news import (
    HolderNames,
    HoldingStatement,
    extract_holdings,
    proposals,
)
from streams.story_processor import KIND, StoryProcessor, StoryState, TableOp

STAGE = "classify-news"
CLUSTER_KEY = b"stories"
BATCH, WITHIN_S = 200, 0.05


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


def process_article(
    raw: bytes | None, now: datetime, names: HolderNames, settings: Settings
) -> ArticleOutput:
    """Classify one article (pure): every article goes to ``articles``; an event also goes
    to story clustering, and its holdings statements become proposals (totals straight to
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


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    stories = app.topic(
        internal_topic(settings, STORY_INPUT),
        key_serializer="raw",
        value_serializer="raw",
        partitions=1,
        internal=True,
    )
    # One row per remembered article (small writes); the clusterer is rebuilt from it on start.
    story_table = StoryTable(
        app.Table("story-entries", default=None, partitions=1, use_partitioner=True)
    )
    # The holders known by name (by default the packaged registry the sample producer sends):
    # which holders an event concerns, and whose holdings an article states.
    registry = settings.holdings_registry_path.read_text(encoding="utf-8")
    linker = HolderLinker.from_csv_text(registry)
    names = HolderNames.from_csv_text(registry)
    clustering = StoryProcessor(linker)

    # The next news offset per partition whose outputs Kafka acknowledged: after a restart the
    # agent reads again anything Faust committed past without processing (streams/positions).
    positions = PositionTable(app, "news-positions", settings, STAGE)

    # The clusterer's input positions, saved once its policy events were acknowledged: a
    # range Faust committed past, or dropped at a rebalance, is read in (runtime/positions).
    story_positions = PositionTable(
        app, "story-positions", settings, "cluster-stories", partitions=1
    )
    story_positions.nudge_when_stalled(stories)

    @app.agent(topics[t.NEWS], name=STAGE, concurrency=1)
    async def classify_news(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(BATCH, within=WITHIN_S):
            sent: list[Any] = []
            fresh = await positions.admit(batch)
            for event in fresh:
                await classify_one(event, sent)
            await asyncio.gather(*sent)  # outputs acknowledged before the position moves
            positions.save(batch)

    async def classify_one(event: Any, sent: list[Any]) -> None:
        t0 = time.perf_counter()
        metrics.count_in(STAGE, t.NEWS)
        out = process_article(event.value, datetime.now(UTC), names, settings)
        if out.rejected is not None:
            dlq = topics[t.DEAD_LETTER]
            sent.append(await dead_letter(dlq, STAGE, out.rejected, event, event.value))
            return
        for name, key, value in out.messages:
            target = stories if name == STORY_INPUT else topics[name]
            sent.append(await target.send(key=key, value=value))
        metrics.count_out(STAGE, t.ARTICLES)
        metrics.count_out(STAGE, t.HOLDINGS_PROPOSALS, out.proposals)
        metrics.PROCESSING.labels(STAGE).observe(time.perf_counter() - t0)

    @app.on_partitions_revoked.connect
    async def _drop(app: faust.App, revoked: Any, **_: Any) -> None:
        story_table.drop()
        positions.revoked()
        story_positions.revoked()

    @app.agent(stories, name="cluster-stories", concurrency=1)
    async def cluster_stories(stream: faust.StreamT) -> None:
        # Batches: one table rebuild check and one acknowledgement wait per batch, not per
        # event; the table is written outside per-event iteration (use_partitioner).
        async for batch in stream.take_events(BATCH, within=WITHIN_S):
            fresh = [e for e in await story_positions.admit(batch) if e.value != NUDGE]
            sent: list[Any] = []
            try:
                await cluster_batch(fresh, sent)
            except StateVersionError as exc:  # a newer worker's state: stop, never misread
                await stop_worker(app, exc)
            await asyncio.gather(*sent)  # policy events acknowledged before the position moves
            story_positions.save(batch)

    async def cluster_batch(fresh: list[Any], sent: list[Any]) -> None:
        dlq = topics[t.DEAD_LETTER]
        await changelog_ready(app, story_table.table)
        try:
            out = clustering.process(story_table.state(), [e.value for e in fresh])
        except (RecordError, ValueError, KeyError) as exc:  # an unreadable stored row
            reason = repr(exc)
            for event in fresh:
                sent.append(await dead_letter(dlq, "cluster-stories", reason, event, event.value))
            return
        story_table.write(out.table)  # evictions, then each article's row, in order
        for i, reason in out.rejected:
            event = fresh[i]
            sent.append(await dead_letter(dlq, "cluster-stories", reason, event, event.value))
        for key, value in out.events:
            sent.append(await topics[t.POLICY_EVENTS].send(key=key, value=value))
        metrics.count_out("cluster-stories", t.POLICY_EVENTS, len(out.events))


class StoryTable:
    """The clustering state over the ``story-entries`` table: rebuilt from its rows on first
    use, kept in step with the processor's writes, dropped when partitions are revoked (the
    next owner rebuilds it from the table)."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table
        self._state: StoryState | None = None

    def state(self) -> StoryState:
        if self._state is None:
            # Rows of any older version are upgraded; a newer one raises StateVersionError.
            rows = (read_record("story-entries", KIND, k, v) for k, v in self.table.items())
            self._state = StoryState.from_rows(rows)
        return self._state

    def write(self, ops: Iterable[TableOp]) -> None:
        apply_writes(self.table, ops)

    def drop(self) -> None:
        self._state = None
