"""Faust agents: which subscriber is owed what. ``policy-events`` and ``alerts`` → ``deliveries``.

* Policy events, in batches that grow under backlog (``BATCH``), are matched against the cached
  subscriptions (``notify.matcher.EventMatcher``: candidates from ``notify.candidates``, then
  Elasticsearch verifies only those). Copies of one story (same
  ``cluster_id``) are sent once per subscriber (bounded memory of what was sent).
* Who gets what: a subscription with a query or event filters gets events; one with a
  rule-type filter gets alerts; one with neither, or with holders only, gets both (a policy
  event carries the holders it concerns) (``wants_events``/``wants_alerts``).
* Treasury alerts are matched by filters only (``Subscription.matches_alert``) inside the
  ``LifecycleTracker`` (firing, re-alert, resolved). They are re-keyed onto a one-partition
  internal topic so one tracker sees all holders; its state lives in a Faust table
  (changelogged, restored on restart). Concurrency 1.
* Both feed one ``DigestGrouper`` (Alertmanager ``group_wait`` / ``group_interval`` per
  subscription); a 0.2 s timer flushes due groups onto ``deliveries``, keyed by subscription
  id, value ``{"id", "subscription", "kind", "items"}`` with a deterministic id.

Digest groups, the story memory and an outbox of digests being sent live in the lifecycle
table (``notify.digest_store``), written before a batch is acknowledged: a restart resumes them.
Elasticsearch errors while matching are waited out (``notify.es_retry``), never raised: Faust
would ack the batch of an agent that raised.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from faust.types import TP

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.records import dumps
from cpwatch.settings import Settings
from cpwatch.state_versions import VERSION_KEY, StateVersionError, current, migrate
from notify.delivery import Item, delivery_id_for, item_dict
from notify.digest_store import DigestStore
from notify.es_retry import retry_es
from notify.lifecycle import DigestGrouper, LifecycleTracker, Notification
from notify.matcher import EventMatcher, SubscriptionCache
from notify.subscriptions import Subscription
from runtime.deadletter import dead_letter
from runtime.elasticsearch import async_client
from runtime.faust_app import Topics
from runtime.position_table import PositionTable
from runtime.table_state import stop_worker
from streams.alerts import Alert
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
STATE_KEY = b"lifecycle"


def _lifecycle_state(stored: Any) -> dict[str, Any] | None:
    """The tracker's record upgraded from what an older release wrote (None: none yet)."""
    if stored is None:
        return None
    state = migrate("lifecycle", stored)
    return {k: v for k, v in state.items() if k != VERSION_KEY}


def wants_events(sub: Subscription) -> bool:
    """A rule-type filter can never match a policy event; a holder filter can (events carry
    the holders they concern), so a holder-only subscription gets both kinds."""
    return not sub.filters.rule_types


def wants_alerts(sub: Subscription) -> bool:
    """A query or an event-only filter (category, country, org, severity) means the
    subscriber asked for policy events; treasury alerts match by holder and rule type only."""
    f = sub.filters
    return not (sub.query or f.categories or f.countries or f.orgs or f.min_severity > 0)


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
    subs_now: dict[str, Subscription] = {}
    grouper: DigestGrouper[Item] = DigestGrouper(
        lambda sid: (
            (s.group_wait, s.group_interval)
            if (s := subs_now.get(sid))
            else (timedelta(0), timedelta(seconds=1))
        )
    )
    rule_types = {r.id: r.type for r in load_rules(settings.rules_path)}
    alert_input = app.topic(
        f"{settings.topic_prefix}{settings.faust_app_id}-lifecycle-input",
        key_serializer="raw",
        value_serializer="raw",
        partitions=1,
        internal=True,
    )
    state_table = app.Table(
        "alert-lifecycle", default=None, partitions=1, key_type=bytes, use_partitioner=True
    )
    trackers: dict[str, LifecycleTracker] = {}
    # The next policy-events offset per partition whose matches are durable: after a restart
    # the agent reads again what Faust committed past without processing (streams/positions;
    # the kill test lost matches to such a jump).
    positions = PositionTable(app, "match-positions", settings, "match-subscriptions")

    async def send_delivery(sid: str, msg: dict[str, Any]) -> None:
        await (await topics[t.DELIVERIES].send(key=sid.encode(), value=dumps(msg)))
        metrics.count_out("subscriptions", t.DELIVERIES)

    digests = DigestStore(
        state_table,
        grouper,
        subs_now,
        compose=delivery_message,
        send=send_delivery,
        flush_producer=lambda: app.producer.flush(),
        max_sent=MAX_SENT_MEMORY,
    )

    async def subscriptions() -> dict[str, Subscription]:
        subs = await cache.get()
        if subs is not subs_seen.get("all"):  # a reload: recompute once, not per batch
            subs_now.clear()
            subs_now.update(subs)
            subs_seen["all"] = subs
            subs_seen["events"] = {k: v for k, v in subs.items() if wants_events(v)}
            freeze["due"] = True
        return subs

    # The event subscriptions stay the same object between reloads: the matcher syncs its
    # candidate index only when handed a new one.
    subs_seen: dict[str, dict[str, Subscription]] = {}
    freeze = {"due": False}

    def freeze_if_due() -> None:
        """After a reload and the sync it causes. With 100,000 subscriptions held (~800,000
        tracked objects) one full collection of the cyclic GC took 2-3 s on this box, a pause
        of every agent of the worker. Frozen objects are left out of collections; a replaced
        set is still freed by reference counting (subscriptions hold no cycles)."""
        if freeze["due"]:
            freeze["due"] = False
            gc.freeze()

    async def event_subscriptions() -> dict[str, Subscription]:
        await subscriptions()
        return subs_seen["events"]

    async def alert_subscriptions() -> list[Subscription]:
        return [s for s in (await subscriptions()).values() if wants_alerts(s)]

    async def flush() -> None:
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
        docs: list[dict[str, Any]] = []
        for event in batch:
            try:
                doc = json.loads(event.value)
                if not isinstance(doc, dict) or not doc.get("id"):
                    raise ValueError("event without id")
                docs.append(doc)
            except ValueError as exc:
                await dead_letter(
                    topics[t.DEAD_LETTER], "match-subscriptions", repr(exc), event, event.value
                )
        subs = await event_subscriptions()
        if not docs or not subs:
            return
        match = functools.partial(matcher.match, docs, subs)
        try:
            matches = await retry_es(match, "match-subscriptions")
            freeze_if_due()
        except Exception as exc:  # noqa: BLE001 - refused for good: dead letters, no crash
            for event in batch:
                await dead_letter(
                    topics[t.DEAD_LETTER], "match-subscriptions", repr(exc), event, event.value
                )
            return
        now = datetime.now(UTC)
        await load_digests()
        for sub, doc in matches:
            if not sub.silenced(now):
                digests.add_event(sub, doc, now)
        digests.persist()
        await flush()

    @app.agent(topics[t.ALERTS], name="route-alerts", concurrency=1)
    async def route_alerts(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await alert_input.send(key=b"alerts", value=event.value)

    async def load_digests() -> None:
        try:
            digests.load()
        except StateVersionError as exc:  # a newer worker's state: stop, never misread
            await stop_worker(app, exc)

    def tracker() -> LifecycleTracker:
        digests.load()
        if "t" not in trackers:
            trackers["t"] = LifecycleTracker(
                [s for s in subs_now.values() if wants_alerts(s)],
                rule_types,
                state=_lifecycle_state(state_table.get(STATE_KEY)),
                max_seen=20_000,
            )
        return trackers["t"]

    @app.on_partitions_revoked.connect
    async def _drop(app: faust.App, revoked: Any, **_: Any) -> None:
        trackers.clear()
        digests.clear()
        positions.revoked()

    @app.agent(alert_input, name="alert-lifecycle", concurrency=1)  # stateful: never more than 1
    async def lifecycle(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                alert = Alert.from_dict(json.loads(event.value))
            except (ValueError, KeyError, TypeError) as exc:
                await dead_letter(
                    topics[t.DEAD_LETTER], "alert-lifecycle", repr(exc), event, event.value
                )
                continue
            subs = await alert_subscriptions()
            try:
                tr = tracker()
            except StateVersionError as exc:  # a newer worker's state: stop, never misread
                await stop_worker(app, exc)
            tr.set_subscriptions(subs)
            now = datetime.now(UTC)
            for n in tr.observe(alert, now):
                digests.add_notification(n, now)
            tr.drain_suppressed()
            digests.persist()  # before the tracker's state: it must not outlive its items
            state_table[STATE_KEY] = {**tr.to_dict(), VERSION_KEY: current("lifecycle")}
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
        if "t" not in trackers:
            return
        tr = trackers["t"]
        tr.set_subscriptions(await alert_subscriptions())
        now = datetime.now(UTC)
        due = tr.tick(now)
        for n in due:
            digests.add_notification(n, now)
        if due:
            digests.persist()
            state_table[STATE_KEY] = {**tr.to_dict(), VERSION_KEY: current("lifecycle")}
            await flush()

    @app.on_before_shutdown.connect
    def _close(app: faust.App, **_: Any) -> None:
        app.loop.create_task(es.close())
