"""Faust agents: which subscriber is owed what. ``policy-events`` and ``alerts`` → ``deliveries``.

* Policy events, in batches that grow under backlog (``BATCH``), are matched against the cached
  subscriptions (``notify.matcher.EventMatcher``: candidates from ``notify.candidates``, then
  Elasticsearch verifies only those). Copies of one story (same
  ``cluster_id``) are sent once per subscriber (bounded memory of what was sent).
* Who gets what: a subscription with a query or event filters gets events; one with a
  rule-type filter gets alerts; one with neither, or with holders only, gets both (a policy
  event carries the holders it concerns) (``notify.alert_processor.wants_events`` /
  ``wants_alerts``).
* Treasury alerts are matched by filters only (``Subscription.matches_alert``) inside the
  ``LifecycleTracker`` (firing, re-alert, resolved). They are re-keyed onto a one-partition
  internal topic so one tracker sees all holders; its state lives in a Faust table
  (changelogged, restored on restart). Concurrency 1.
* Both feed one ``DigestGrouper`` (Alertmanager ``group_wait`` / ``group_interval`` per
  subscription); a 0.2 s timer flushes due groups onto ``deliveries``, keyed by subscription
  id, value ``{"id", "subscription", "kind", "items"}`` with a deterministic id.

Digest groups, the story memory and an outbox of digests being sent live in the lifecycle
table (``notify.digest_store``), written before a batch is acknowledged: a restart resumes them.
What to notify and what to write is decided by ``notify.alert_processor`` (pure); the agents
here read, call it, dead-letter, write the table in the order it says and send.
Elasticsearch errors while matching are waited out (``notify.es_retry``), never raised: Faust
would ack the batch of an agent that raised.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from faust.types import TP

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.internal_topics import LIFECYCLE_INPUT, internal_topic
from cpwatch.records import dumps
from cpwatch.settings import Settings
from cpwatch.state_versions import StateVersionError
from notify.alert_processor import (
    STATE_KEY,
    AlertProcessor,
    LifecycleState,
    SubscriptionSets,
    add_matches,
    parse_events,
)
from notify.delivery import Item, delivery_id_for, item_dict
from notify.digest_store import DigestStore
from notify.es_retry import retry_es
from notify.lifecycle import DigestGrouper, Notification
from notify.matcher import EventMatcher, SubscriptionCache
from notify.subscriptions import Subscription
from runtime.deadletter import dead_letter
from runtime.elasticsearch import async_client
from runtime.faust_app import Topics
from runtime.nudge import NUDGE
from runtime.position_table import PositionTable
from runtime.table_state import changelog_ready, stop_worker
from streams.rules import load_rules

log = logging.getLogger(__name__)

# Batches adapt to the load: ``take_events`` hands over what has arrived once ``WITHIN_S`` has
# passed, or at once when ``BATCH`` events are waiting. Idle, a batch is an event or a few and
# waits at most WITHIN_S; under backlog, batches grow to BATCH, where the per-batch costs
# (analysis, candidate search, scratch refresh) are shared by thousands of events.
BATCH = 2_000
WITHIN_S = 0.05
FLUSH_S = 0.2
TICK_S = 5.0
MAX_SENT_MEMORY = 100_000


def delivery_message(sub_id: str, items: list[Item]) -> dict[str, Any]:
    """The ``deliveries`` record: deterministic id, subscription, kind, items (JSON)."""
    kinds = {("alert" if isinstance(i, Notification) else "event") for i in items}
    kind = "digest" if len(items) > 1 else kinds.pop()
    return {
        "id": delivery_id_for(sub_id, items),
        "subscription": sub_id,
        "kind": kind,
        "items": [item_dict(i) for i in items],
    }


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    es = async_client(settings)
    cache = SubscriptionCache(es, settings)
    matcher = EventMatcher(es, settings)
    subs = SubscriptionSets()
    grouper: DigestGrouper[Item] = DigestGrouper(
        lambda sid: (
            (s.group_wait, s.group_interval)
            if (s := subs.all.get(sid))
            else (timedelta(0), timedelta(seconds=1))
        )
    )
    processor = AlertProcessor({r.id: r.type for r in load_rules(settings.rules_path)})
    alert_input = app.topic(
        internal_topic(settings, LIFECYCLE_INPUT),
        key_serializer="raw",
        value_serializer="raw",
        partitions=1,
        internal=True,
    )
    state_table = app.Table(
        "alert-lifecycle", default=None, partitions=1, key_type=bytes, use_partitioner=True
    )
    # The next policy-events offset per partition whose matches are durable: after a restart
    # the agent reads again what Faust committed past without processing (streams/positions;
    # the kill test lost matches to such a jump).
    positions = PositionTable(app, "match-positions", settings, "match-subscriptions")
    # The same guard on the alert path: route-alerts' input (alerts: a contract topic, so a
    # partition standing still behind its end is sought back, not nudged) and the tracker's
    # internal input, which a stall nudge reveals (runtime/nudge.py).
    route_positions = PositionTable(app, "route-alerts-positions", settings, "route-alerts")
    route_positions.restart_when_stalled(topics[t.ALERTS], nudge=False)
    lifecycle_positions = PositionTable(
        app, "lifecycle-positions", settings, "alert-lifecycle", partitions=1
    )
    lifecycle_positions.restart_when_stalled(alert_input, nudge=True)
    dlq = topics[t.DEAD_LETTER]

    async def send_delivery(sid: str, msg: dict[str, Any]) -> None:
        await (await topics[t.DELIVERIES].send(key=sid.encode(), value=dumps(msg)))
        metrics.count_out("subscriptions", t.DELIVERIES)

    digests = DigestStore(
        state_table,
        grouper,
        subs.all,
        compose=delivery_message,
        send=send_delivery,
        flush_producer=lambda: app.producer.flush(),
        max_sent=MAX_SENT_MEMORY,
    )
    lifecycle_now = LifecycleTable(processor, state_table, digests)

    async def subscriptions() -> SubscriptionSets:
        # Until the set was loaded once, an unavailable cluster is waited out here: matching
        # against no subscription would notify nobody and move on.
        subs.update(await retry_es(cache.get, "subscriptions"))  # recomputed once per reload
        return subs

    def freeze_if_due() -> None:
        """After a reload and the sync it causes. With 100,000 subscriptions held (~800,000
        tracked objects) one full collection of the cyclic GC took 2-3 s on this box, a pause
        of every agent of the worker. Frozen objects are left out of collections; a replaced
        set is still freed by reference counting (subscriptions hold no cycles)."""
        if subs.take_freeze():
            gc.freeze()

    async def flush() -> None:
        await changelog_ready(app, state_table)  # the outbox is written there
        await digests.flush(datetime.now(UTC))

    @app.agent(topics[t.POLICY_EVENTS], name="match-subscriptions", concurrency=1)
    async def match_events(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(BATCH, within=WITHIN_S):
            await match_batch(await positions.admit(batch))
            # Matches are in the digest table and the producer flushed before the position
            # moves: a position never claims events whose matches could still be lost.
            await app.producer.flush()
            positions.save(batch)

    async def match_batch(batch: list[Any]) -> None:
        if not batch:
            return
        metrics.count_in("match-subscriptions", t.POLICY_EVENTS, len(batch))
        parsed = parse_events([event.value for event in batch])
        for i, reason in parsed.rejected:
            await dead_letter(dlq, "match-subscriptions", reason, batch[i], batch[i].value)
        if not parsed.docs:
            return
        try:
            events = (await subscriptions()).events
            if not events:
                return
            match = functools.partial(matcher.match, parsed.docs, events)
            matches = await retry_es(match, "match-subscriptions")
            freeze_if_due()
        except Exception as exc:  # noqa: BLE001 - refused for good: dead letters, no crash
            for event in batch:
                await dead_letter(dlq, "match-subscriptions", repr(exc), event, event.value)
            return
        await load_digests()
        digests.write(add_matches(digests.book, matches, datetime.now(UTC)))
        await flush()

    @app.agent(topics[t.ALERTS], name="route-alerts", concurrency=1)
    async def route_alerts(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(BATCH, within=WITHIN_S):
            sent = [
                await alert_input.send(key=b"alerts", value=event.value)
                for event in await route_positions.admit(batch)
            ]
            await asyncio.gather(*sent)  # re-keyed before the position moves
            route_positions.save(batch)

    async def load_digests() -> None:
        await changelog_ready(app, state_table)  # before the writes that follow a load
        try:
            digests.load()
        except StateVersionError as exc:  # a newer worker's state: stop, never misread
            await stop_worker(app, exc)

    @app.on_partitions_revoked.connect
    async def _drop(app: faust.App, revoked: Any, **_: Any) -> None:
        lifecycle_now.drop()
        digests.clear()
        positions.revoked()
        route_positions.revoked()
        lifecycle_positions.revoked()

    @app.agent(alert_input, name="alert-lifecycle", concurrency=1)  # stateful: never more than 1
    async def lifecycle(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(BATCH, within=WITHIN_S):
            fresh = [e for e in await lifecycle_positions.admit(batch) if e.value != NUDGE]
            if fresh:
                await lifecycle_batch(fresh)
            # The tracker's state and digests are in the table and the producer flushed
            # before the position moves (as for matches above).
            await app.producer.flush()
            lifecycle_positions.save(batch)

    async def lifecycle_batch(batch: list[Any]) -> None:
        await changelog_ready(app, state_table)
        try:
            alerts = (await subscriptions()).alerts
        except Exception as exc:  # noqa: BLE001 - refused for good: dead letters, no crash
            for event in batch:
                await dead_letter(dlq, "alert-lifecycle", repr(exc), event, event.value)
            return
        try:
            state = lifecycle_now.get(alerts)
        except StateVersionError as exc:  # a newer worker's state: stop, never misread
            await stop_worker(app, exc)
        now = datetime.now(UTC)
        out = processor.process(state, digests.book, [e.value for e in batch], alerts, now)
        for i, reason in out.rejected:
            await dead_letter(dlq, "alert-lifecycle", reason, batch[i], batch[i].value)
        if out.writes:
            digests.write(out.writes)  # digests before the tracker's state (its items)
            await flush()

    def owns_state() -> bool:
        """After recovery, with the lifecycle partition (and so its table) assigned here."""
        tp = TP(alert_input.get_topic_name(), 0)
        return (
            not app.rebalancing
            and app.tables.recovery.completed.is_set()
            and tp in app.consumer.assignment()
        )

    @app.timer(interval=FLUSH_S)
    async def flush_digests() -> None:
        if not digests.loaded and owns_state():
            await load_digests()  # groups and outbox of before a restart go out without input
        await flush()

    @app.timer(interval=TICK_S)
    async def realert() -> None:
        if lifecycle_now.state is None:
            return
        alerts = (await subscriptions()).alerts  # loaded once already: never raises now
        await changelog_ready(app, state_table)
        out = processor.tick(lifecycle_now.state, digests.book, alerts, datetime.now(UTC))
        if out.writes:
            digests.write(out.writes)  # digests before the tracker's state
            await flush()

    @app.on_before_shutdown.connect
    def _close(app: faust.App, **_: Any) -> None:
        app.loop.create_task(es.close())


class LifecycleTable:
    """The tracker's state over the ``alert-lifecycle`` table: decoded on first use (after the
    digests, which share the table), dropped when partitions are revoked."""

    def __init__(self, processor: AlertProcessor, table: Any, digests: DigestStore) -> None:
        self.processor, self.table, self.digests = processor, table, digests
        self.state: LifecycleState | None = None

    def get(self, subs: list[Subscription]) -> LifecycleState:
        self.digests.load()
        if self.state is None:
            self.state = self.processor.from_record(self.table.get(STATE_KEY), subs)
        return self.state

    def drop(self) -> None:
        self.state = None
