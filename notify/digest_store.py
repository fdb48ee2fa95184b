"""Digest groups that survive a crash: the ``DigestGrouper`` kept in a Faust table.

The match and lifecycle agents add items here while they process a batch, and ``persist``
writes the changed groups (and, per matched story, that the subscriber got it) to the table
before the batch is acknowledged. Faust flushes the producer, changelog included, before it
commits input offsets, so an input offset is committed only once its items are durable.

A flush goes through an outbox, so a digest message replayed after a crash is the very same
message (same items, same delivery id, hence the same ``Idempotency-Key``):

1. due groups become outbox entries and are emptied, in the table, in that order;
2. the producer is flushed: the outbox is durable before anything is sent;
3. each entry is sent to ``deliveries``, and deleted from the table once Kafka acknowledged.

After a restart ``load`` restores groups, story memory and outbox; the outbox is sent first.
Keys: ``digest␟<sub>␟<labels>`` (a group), ``sent␟<sub>␟<story>`` (a story the subscriber
was owed), ``outbox␟<delivery id>``. All sit in one table partition with the lifecycle state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

from cpwatch.state_versions import VERSION_KEY, current, lifecycle_kind, migrate
from notify.delivery import Item, item_dict
from notify.lifecycle import DEFAULT_GROUP_BY, SEP, DigestGrouper, Notification, group_labels
from notify.senders import items_from_message
from notify.subscriptions import Subscription

log = logging.getLogger(__name__)

DIGEST, SENT, OUTBOX = "digest", "sent", "outbox"
Send = Callable[[str, dict[str, Any]], Awaitable[None]]  # (sub id, message): returns once acked
Compose = Callable[[str, list[Item]], dict[str, Any]]


def _key(*parts: str) -> bytes:
    return SEP.join(parts).encode()


def _decode(raw: Any) -> Item:
    return items_from_message([raw])[0]


class DigestStore:
    def __init__(
        self,
        table: MutableMapping[bytes, Any],
        grouper: DigestGrouper[Item],
        subs: dict[str, Subscription],
        *,
        compose: Compose,
        send: Send,
        flush_producer: Callable[[], Awaitable[None]],
        max_sent: int = 100_000,
    ) -> None:
        self.table, self.grouper, self.subs = table, grouper, subs
        self.compose, self.send, self.flush_producer = compose, send, flush_producer
        self.max_sent = max_sent
        self.sent: OrderedDict[bytes, None] = OrderedDict()
        self._new_sent: list[tuple[bytes, float]] = []
        self.outbox: dict[bytes, tuple[str, dict[str, Any]]] = {}
        self.loaded = False
        self._lock = asyncio.Lock()

    def load(self) -> None:
        """Rebuild from the table (after recovery); a no-op once loaded."""
        if self.loaded:
            return
        sent: list[tuple[float, bytes]] = []
        for key, stored in list(self.table.items()):
            kind, _, rest = key.decode().partition(SEP)
            if kind not in (DIGEST, SENT, OUTBOX):
                continue  # the lifecycle record, read by the match agent
            # Older releases wrote these unversioned; a newer release's record stops here.
            value = migrate(lifecycle_kind(key), stored)
            if kind == DIGEST:
                self.grouper.restore(rest, value, _decode)
            elif kind == SENT:
                sent.append((float(value["at"]), key))
            else:
                msg = {k: v for k, v in value.items() if k != VERSION_KEY}
                self.outbox[key] = (str(msg["subscription"]), msg)
        self.sent = OrderedDict((k, None) for _, k in sorted(sent))
        self.loaded = True
        if self.outbox or len(self.grouper):
            log.info(
                "digests resumed: %d item(s) in groups, %d in the outbox",
                len(self.grouper),
                len(self.outbox),
            )

    def clear(self) -> None:
        """Partitions revoked: the next owner resumes from the table."""
        self.grouper = DigestGrouper(self.grouper._timing, max_items=self.grouper.max_items)
        self.sent.clear()
        self._new_sent.clear()
        self.outbox.clear()
        self.loaded = False

    def _group(self, sub_id: str, item: object) -> str:
        sub = self.subs.get(sub_id)
        return group_labels(item, sub.group_by if sub else DEFAULT_GROUP_BY)

    def add_event(self, sub: Subscription, doc: dict[str, Any], now: datetime) -> None:
        """One story per subscriber: other outlets' copies of a story it got are skipped."""
        story = _key(SENT, sub.id, str(doc.get("cluster_id") or doc["id"]))
        if story in self.sent:
            return
        self.grouper.add(sub.id, doc, now, group=self._group(sub.id, doc), key=str(doc["id"]))
        self.sent[story] = None
        self._new_sent.append((story, now.timestamp()))

    def add_notification(self, n: Notification, now: datetime) -> None:
        group = self._group(n.subscription, n)
        self.grouper.add(n.subscription, n, now, group=group, key=n.delivery_id)

    def persist(self) -> None:
        """Write the groups changed since the last call. Call before the caller's own state
        (lifecycle, story memory) so a crash never keeps the state without the items."""
        for gk in self.grouper.take_dirty():
            snap = self.grouper.snapshot(gk, item_dict)
            if snap is None:
                self.table.pop(_key(DIGEST, gk), None)
            else:
                self.table[_key(DIGEST, gk)] = {**snap, VERSION_KEY: current("digest-group")}
        for story, at in self._new_sent:  # after the groups: one partition keeps this order
            self.table[story] = {VERSION_KEY: current("digest-sent"), "at": at}
        self._new_sent.clear()
        while len(self.sent) > self.max_sent:
            old, _ = self.sent.popitem(last=False)
            self.table.pop(old, None)

    async def flush(self, now: datetime) -> None:
        async with self._lock:
            if not self.loaded:
                return
            for _gk, sid, items in self.grouper.due_groups(now):
                msg = self.compose(sid, items)
                key = _key(OUTBOX, str(msg["id"]))
                self.outbox[key] = (sid, msg)
                self.table[key] = {**msg, VERSION_KEY: current("digest-outbox")}
            if not self.outbox:
                return
            self.persist()
            try:
                await self.flush_producer()  # the outbox is durable before anything is sent
                for key, (sid, msg) in list(self.outbox.items()):
                    await self.send(sid, msg)
                    del self.outbox[key]
                    self.table.pop(key, None)
            except Exception as exc:  # noqa: BLE001 - Kafka down: the outbox is retried
                log.warning("digest flush deferred (%r); %d in the outbox", exc, len(self.outbox))
