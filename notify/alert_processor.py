"""Notify's stateful logic without its engines: alerts -> lifecycle -> digest items, and
matched policy events -> digest items, each ``(state, batch) -> (state, outputs)``.

* ``AlertProcessor.process``: a batch of ``alerts`` messages through the ``LifecycleTracker``
  (firing, re-alert, resolved, duplicates suppressed); every notification owed is added to the
  digest groups (``DigestBook``; ``notify/digest_store.py`` keeps it in the table
  and sends what is due).
* ``AlertProcessor.tick``: re-alerts due, and firings owed since a silence ended.
* ``add_matches``: (subscription, event) pairs the matcher found -> digest items (one story per
  subscriber; silenced subscribers get nothing).

The outputs carry the table writes in the order they must be made: the digest groups and story
memory first, the tracker's record (kind ``lifecycle`` of ``cpwatch/state_versions.py``) last,
so a crash never keeps the tracker's state without the items it owed. ``LifecycleState`` is
that record decoded; ``from_record`` reads any older version and refuses a newer one.

Pure: no Kafka, Faust or Elasticsearch; the subscriptions come in as arguments (the agents in
``notify/match_agent.py`` fetch them). A replayed alert is a duplicate (its fingerprint is
remembered) and a replayed event a story already owed, so a replay adds nothing.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cpwatch.state_versions import VERSION_KEY, current, fields, lifecycle_kind
from notify.delivery import Item, item_dict
from notify.lifecycle import (
    DEFAULT_GROUP_BY,
    SEP,
    DigestGrouper,
    LifecycleTracker,
    Notification,
    Suppressed,
    group_labels,
)
from notify.subscriptions import Subscription
from streams.alerts import Alert

KIND = "lifecycle"
STATE_KEY = b"lifecycle"  # the tracker's key in the ``alert-lifecycle`` table
MAX_SEEN = 20_000  # alert fingerprints remembered as duplicates
DIGEST, SENT, OUTBOX = "digest", "sent", "outbox"  # key prefixes of the digest rows there
TableWrite = tuple[bytes, Any]  # (key, record | None: delete)


def row_key(*parts: str) -> bytes:
    """A key of the ``alert-lifecycle`` table: ``kind␟sub␟...``."""
    return SEP.join(parts).encode()


class DigestBook:
    """The pure part: digest groups and the story memory, as items are added, and the table
    writes that make them durable (``take_writes``). No I/O: the caller writes the table."""

    def __init__(
        self, grouper: DigestGrouper[Item], subs: dict[str, Subscription], max_sent: int
    ) -> None:
        self.grouper, self.subs, self.max_sent = grouper, subs, max_sent
        self.sent: OrderedDict[bytes, None] = OrderedDict()
        self._new_sent: list[tuple[bytes, float]] = []

    def restore(
        self, rows: Iterable[tuple[bytes, Any]], decode: Callable[[Any], Item]
    ) -> dict[bytes, tuple[str, dict[str, Any]]]:
        """Groups and story memory from the table's rows; returns the outbox entries found.
        Rows of other kinds (the lifecycle record) are left to their readers. Older releases
        wrote these unversioned; a newer release's record raises ``StateVersionError``."""
        sent: list[tuple[float, bytes]] = []
        outbox: dict[bytes, tuple[str, dict[str, Any]]] = {}
        for key, stored in rows:
            kind, _, rest = key.decode().partition(SEP)
            if kind not in (DIGEST, SENT, OUTBOX):
                continue
            value = fields(lifecycle_kind(key), stored)
            if kind == DIGEST:
                self.grouper.restore(rest, value, decode)
            elif kind == SENT:
                sent.append((float(value["at"]), key))
            else:
                outbox[key] = (str(value["subscription"]), value)
        self.sent = OrderedDict((k, None) for _, k in sorted(sent))
        return outbox

    def _group(self, sub_id: str, item: object) -> str:
        sub = self.subs.get(sub_id)
        return group_labels(item, sub.group_by if sub else DEFAULT_GROUP_BY)

    def add_event(self, sub: Subscription, doc: dict[str, Any], now: datetime) -> bool:
        """One story per subscriber: other outlets' copies of a story it got are skipped
        (False)."""
        story = row_key(SENT, sub.id, str(doc.get("cluster_id") or doc["id"]))
        if story in self.sent:
            return False
        self.grouper.add(sub.id, doc, now, group=self._group(sub.id, doc), key=str(doc["id"]))
        self.sent[story] = None
        self._new_sent.append((story, now.timestamp()))
        return True

    def add_notification(self, n: Notification, now: datetime) -> bool:
        """False if the group already holds it (a replayed notification)."""
        group = self._group(n.subscription, n)
        return self.grouper.add(n.subscription, n, now, group=group, key=n.delivery_id)

    def take_writes(self) -> list[TableWrite]:
        """The writes for what changed since the last call, in the order they must reach the
        table: changed groups, then the stories owed, then the story memory trimmed to
        ``max_sent``. A caller's own state goes after them: it must not outlive its items."""
        out: list[TableWrite] = []
        for gk in self.grouper.take_dirty():
            snap = self.grouper.snapshot(gk, item_dict)
            record = None if snap is None else {**snap, VERSION_KEY: current("digest-group")}
            out.append((row_key(DIGEST, gk), record))
        for story, at in self._new_sent:  # after the groups: one partition keeps this order
            out.append((story, {VERSION_KEY: current("digest-sent"), "at": at}))
        self._new_sent.clear()
        while len(self.sent) > self.max_sent:
            old, _ = self.sent.popitem(last=False)
            out.append((old, None))
        return out

    def clear(self) -> None:
        self.grouper = DigestGrouper(self.grouper._timing, max_items=self.grouper.max_items)
        self.sent.clear()
        self._new_sent.clear()


def wants_events(sub: Subscription) -> bool:
    """A rule-type filter can never match a policy event; a holder filter can (events carry
    the holders they concern), so a holder-only subscription gets both kinds."""
    return not sub.filters.rule_types


def wants_alerts(sub: Subscription) -> bool:
    """A query or an event-only filter (category, country, org, severity) means the
    subscriber asked for policy events; treasury alerts match by holder and rule type only."""
    f = sub.filters
    return not (sub.query or f.categories or f.countries or f.orgs or f.min_severity > 0)


class SubscriptionSets:
    """The cached subscriptions as the agents use them, recomputed only when the cache hands
    over a new set (a reload). ``all`` stays one object (the digest grouper reads its timings
    there); ``events`` stays the same object between reloads, so the matcher syncs its
    candidate index only after one; ``freeze_due`` says a reload happened since the last
    ``take_freeze``."""

    def __init__(self) -> None:
        self.all: dict[str, Subscription] = {}
        self.events: dict[str, Subscription] = {}
        self.alerts: list[Subscription] = []
        self.freeze_due = False
        self._current: dict[str, Subscription] | None = None

    def update(self, subs: dict[str, Subscription]) -> bool:
        """Take the cache's set; True if it is a new one."""
        if subs is self._current:
            return False
        self._current = subs
        self.all.clear()
        self.all.update(subs)
        self.events = {k: v for k, v in subs.items() if wants_events(v)}
        self.alerts = [s for s in subs.values() if wants_alerts(s)]
        self.freeze_due = True
        return True

    def take_freeze(self) -> bool:
        due, self.freeze_due = self.freeze_due, False
        return due


@dataclass
class LifecycleState:
    """The tracker's state; ``to_record`` is the table's record (today's version)."""

    tracker: LifecycleTracker

    def to_record(self) -> dict[str, Any]:
        return {**self.tracker.to_dict(), VERSION_KEY: current(KIND)}


@dataclass
class AlertOutput:
    """What a batch (or a tick) produced, for the agent to dead-letter and write."""

    notifications: list[Notification] = field(default_factory=list)
    suppressed: list[Suppressed] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index in batch, reason)
    writes: list[TableWrite] = field(default_factory=list)  # digests first, tracker last


class AlertProcessor:
    def __init__(self, rule_types: Mapping[str, str], max_seen: int = MAX_SEEN) -> None:
        self.rule_types = dict(rule_types)  # rule id -> level|below_cost|...
        self.max_seen = max_seen

    def from_record(self, stored: Any, subs: Iterable[Subscription]) -> LifecycleState:
        """Decode the table's record (``None``: none yet); rows of any older version are
        upgraded, a newer one raises ``StateVersionError``."""
        tracker = LifecycleTracker(
            list(subs), self.rule_types, state=fields(KIND, stored), max_seen=self.max_seen
        )
        return LifecycleState(tracker)

    def process(
        self,
        state: LifecycleState,
        digests: DigestBook,
        batch: Sequence[bytes | None],
        subs: Iterable[Subscription],
        now: datetime,
    ) -> AlertOutput:
        """Observe each valid alert in order; a malformed one becomes a reason. Nothing is
        written when no alert was valid."""
        out = AlertOutput()
        alerts: list[Alert] = []
        for i, raw in enumerate(batch):
            try:
                alerts.append(Alert.from_dict(json.loads(raw)))  # type: ignore[arg-type]
            except (ValueError, KeyError, TypeError) as exc:
                out.rejected.append((i, repr(exc)))
        if not alerts:
            return out
        tracker = state.tracker
        tracker.set_subscriptions(subs)
        for alert in alerts:
            for n in tracker.observe(alert, now):
                digests.add_notification(n, now)
                out.notifications.append(n)
        out.suppressed = tracker.drain_suppressed()
        out.writes = [*digests.take_writes(), (STATE_KEY, state.to_record())]
        return out

    def tick(
        self,
        state: LifecycleState,
        digests: DigestBook,
        subs: Iterable[Subscription],
        now: datetime,
    ) -> AlertOutput:
        """Re-alerts due at ``now``; writes only when something was due."""
        out = AlertOutput()
        state.tracker.set_subscriptions(subs)
        for n in state.tracker.tick(now):
            digests.add_notification(n, now)
            out.notifications.append(n)
        if out.notifications:
            out.writes = [*digests.take_writes(), (STATE_KEY, state.to_record())]
        return out


@dataclass
class EventBatch:
    """A batch of ``policy-events`` messages decoded: the documents and what was refused."""

    docs: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index in batch, reason)


def parse_events(batch: Sequence[bytes | None]) -> EventBatch:
    """Every message must be a JSON object with an ``id``."""
    out = EventBatch()
    for i, raw in enumerate(batch):
        try:
            doc = json.loads(raw)  # type: ignore[arg-type]
            if not isinstance(doc, dict) or not doc.get("id"):
                raise ValueError("event without id")
            out.docs.append(doc)
        except ValueError as exc:
            out.rejected.append((i, repr(exc)))
    return out


def add_matches(
    digests: DigestBook, matches: Iterable[tuple[Subscription, dict[str, Any]]], now: datetime
) -> list[TableWrite]:
    """Matched events become digest items (not for a silenced subscriber, once per story and
    subscriber); returns the table writes that make them durable."""
    for sub, doc in matches:
        if not sub.silenced(now):
            digests.add_event(sub, doc, now)
    return digests.take_writes()
