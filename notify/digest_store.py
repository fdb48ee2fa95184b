"""Digest groups that survive a crash: the ``DigestGrouper`` kept in a Faust table.

The groups and the story memory are a ``DigestBook`` (``notify/alert_processor.py``, pure);
the match and lifecycle agents add items to it while they process a batch, and ``persist``
(or ``write`` of the processor's writes) puts the changed groups (and, per matched story, that
the subscriber got it) in the table before the batch is acknowledged. Faust flushes the
producer, changelog included, before it commits input offsets, so an input offset is committed
only once its items are durable.

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
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from datetime import datetime
from typing import Any

from cpwatch.state_versions import VERSION_KEY, current
from notify.alert_processor import OUTBOX, DigestBook, TableWrite, row_key
from notify.delivery import Item
from notify.lifecycle import DigestGrouper, Notification
from notify.senders import items_from_message
from notify.subscriptions import Subscription
from runtime.table_state import apply_writes

log = logging.getLogger(__name__)

Send = Callable[[str, dict[str, Any]], Awaitable[None]]  # (sub id, message): returns once acked
Compose = Callable[[str, list[Item]], dict[str, Any]]


def _decode(raw: Any) -> Item:
    return items_from_message([raw])[0]


class DigestStore:
    """A ``DigestBook`` over the table, with the outbox and the flush that sends it."""

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
        self.table = table
        self.book = DigestBook(grouper, subs, max_sent)
        self.compose, self.send, self.flush_producer = compose, send, flush_producer
        self.outbox: dict[bytes, tuple[str, dict[str, Any]]] = {}
        self.loaded = False
        self._lock = asyncio.Lock()

    @property
    def grouper(self) -> DigestGrouper[Item]:
        return self.book.grouper

    @property
    def sent(self) -> OrderedDict[bytes, None]:
        return self.book.sent

    def load(self) -> None:
        """Rebuild from the table (after recovery); a no-op once loaded."""
        if self.loaded:
            return
        self.outbox = self.book.restore(list(self.table.items()), _decode)
        self.loaded = True
        if self.outbox or len(self.grouper):
            log.info(
                "digests resumed: %d item(s) in groups, %d in the outbox",
                len(self.grouper),
                len(self.outbox),
            )

    def clear(self) -> None:
        """Partitions revoked: the next owner resumes from the table."""
        self.book.clear()
        self.outbox.clear()
        self.loaded = False

    def add_event(self, sub: Subscription, doc: dict[str, Any], now: datetime) -> None:
        self.book.add_event(sub, doc, now)

    def add_notification(self, n: Notification, now: datetime) -> None:
        self.book.add_notification(n, now)

    def write(self, writes: Iterable[TableWrite]) -> None:
        """Apply table writes in their order (a ``None`` record deletes the key)."""
        apply_writes(self.table, writes)

    def persist(self) -> None:
        """Write the groups changed since the last call. Call before the caller's own state
        (lifecycle, story memory) so a crash never keeps the state without the items."""
        self.write(self.book.take_writes())

    async def flush(self, now: datetime) -> None:
        async with self._lock:
            if not self.loaded:
                return
            for _gk, sid, items in self.grouper.due_groups(now):
                msg = self.compose(sid, items)
                key = row_key(OUTBOX, str(msg["id"]))
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
