"""Faust agents: ``news`` → classify (``streams/news_processor.py``) → ``articles`` (every
article) and, for events, near-duplicate grouping → ``policy-events`` keyed by story cluster.

Copies of one story arrive under different article ids, hence on different partitions, so
events are re-keyed onto one internal partition where a single bounded clusterer sees them
all (news volumes are small; classification, the costly part, stays parallel).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

import faust

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.exceptions import RecordError
from cpwatch.internal_topics import STORY_INPUT, internal_topic
from cpwatch.settings import Settings
from cpwatch.state_versions import StateVersionError
from runtime.deadletter import dead_letter
from runtime.faust_app import Topics
from runtime.nudge import NUDGE
from runtime.position_table import PositionTable
from runtime.process_pool import OffloadPool
from runtime.table_state import apply_writes, changelog_ready, read_record, stop_worker
from streams.holder_links import HolderLinker
from streams.news_processor import ArticleOutput, init_process, process_batch
from streams.story_processor import KIND, StoryProcessor, StoryState, TableOp

STAGE = "classify-news"
BATCH, WITHIN_S = 200, 0.05
IN_FLIGHT = 2  # batches: one being classified, the one before it being sent (3 measured no faster)


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
    clustering = StoryProcessor(linker)
    # Classification runs in processes beside the loop (runtime/process_pool.py): while one
    # batch is classified there, the loop sends, sinks and clusters the one before.
    classifiers = OffloadPool(settings.classify_processes, init_process, (registry, settings))

    # The next news offset per partition whose outputs Kafka acknowledged: after a restart the
    # agent reads again anything Faust committed past without processing (streams/positions).
    positions = PositionTable(app, "news-positions", settings, STAGE)
    # A partition whose last articles were committed past or dropped has no next article to
    # reveal the hole: its fetch is sought back instead (news is a contract topic, not nudged).
    positions.restart_when_stalled(topics[t.NEWS], nudge=False)

    # The clusterer's input positions, saved once its policy events were acknowledged: a
    # range Faust committed past, or dropped at a rebalance, is read in (runtime/positions).
    story_positions = PositionTable(
        app, "story-positions", settings, "cluster-stories", partitions=1
    )
    story_positions.restart_when_stalled(stories, nudge=True)

    producer = app.producer
    targets = {
        name: topics[name].get_topic_name()
        for name in (t.ARTICLES, t.HOLDINGS_PROPOSALS, t.HOLDINGS)
    }
    targets[STORY_INPUT] = stories.get_topic_name()
    events_topic = topics[t.POLICY_EVENTS].get_topic_name()

    # Batches in flight, oldest first: the newest is being classified, the ones before are
    # being sent. Each finishes after the one before it.
    in_flight: deque[asyncio.Future[None]] = deque()

    @app.agent(topics[t.NEWS], name=STAGE, concurrency=1)
    async def classify_news(stream: faust.StreamT) -> None:
        # Offsets are acknowledged by hand (noack_take), a batch once its outputs are
        # acknowledged and its positions saved, so Faust commits no further than the oldest
        # batch in flight. take_events acknowledges a batch as soon as the next one is asked
        # for: a worker killed then lost the batch in flight, as its offsets were committed
        # and no later message revealed the hole to the input guard.
        async for batch in stream.noack_take(BATCH, within=WITHIN_S):
            fresh = await positions.admit(batch)
            marks = positions.mark(batch)  # taken now: later batches move the offsets on
            job = asyncio.ensure_future(
                classifiers.map_batch(process_batch, [e.value for e in fresh], datetime.now(UTC))
            )
            before = in_flight[-1] if in_flight else None
            done = finish(stream, before, batch, fresh, job, marks)
            in_flight.append(asyncio.ensure_future(done))
            while len(in_flight) >= IN_FLIGHT or (in_flight and in_flight[0].done()):
                await in_flight.popleft()  # bounded; a failed batch stops the agent

    async def finish(
        stream: faust.StreamT,
        before: asyncio.Future[None] | None,
        batch: Sequence[Any],
        fresh: list[Any],
        job: asyncio.Future[list[ArticleOutput]],
        marks: dict[int, int],
    ) -> None:
        outputs = await job
        if before is not None:
            await before  # the earlier batch's messages go first
        sent: list[Any] = []
        for event, out in zip(fresh, outputs, strict=True):
            await send_one(event, out, sent)
        await asyncio.gather(*sent)  # outputs acknowledged before the position moves
        positions.save_at(marks)
        for event in batch:  # the whole batch, skipped replays too: now Faust may commit it
            await stream.ack(event)

    async def send_one(event: Any, out: ArticleOutput, sent: list[Any]) -> None:
        metrics.count_in(STAGE, t.NEWS)
        if out.rejected is not None:
            dlq = topics[t.DEAD_LETTER]
            sent.append(await dead_letter(dlq, STAGE, out.rejected, event, event.value))
            return
        # Straight to Faust's producer, as the holder stage does: Topic.send's schema, sensors
        # and callbacks were a tenth of the loop's time on a news backlog (py-spy).
        for name, key, value in out.messages:
            sent.append(await producer.send(targets[name], key, value, None, None, None))
        metrics.count_out(STAGE, t.ARTICLES)
        metrics.count_out(STAGE, t.HOLDINGS_PROPOSALS, out.proposals)
        metrics.PROCESSING.labels(STAGE).observe(out.seconds)

    @app.on_before_shutdown.connect
    def _stop_classifiers(app: faust.App, **_: Any) -> None:
        classifiers.close()

    @app.on_partitions_revoked.connect
    async def _drop(app: faust.App, revoked: Any, **_: Any) -> None:
        if in_flight:
            await asyncio.wait(in_flight)  # batches in flight are saved by this worker
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
            sent.append(await producer.send(events_topic, key, value, None, None, None))
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
