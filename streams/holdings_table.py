"""The holdings topic as a table the treasury stage reads to its end before it values a tick.

Like a Kafka Streams GlobalKTable: every worker reads every partition of the compacted
``holdings`` topic with a consumer outside any group, keeps every row it read, and catches up
to the topic's end offsets at the start of each treasury batch. A row acknowledged by Kafka
before a tick was produced is therefore in the table before that tick is valued, at start-up,
after a rebalance and in steady flow alike. Malformed rows are skipped here: the
``check-holdings`` agent dead-letters them once, through its consumer group.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.exceptions import RecordError
from cpwatch.records import HoldingUpdate
from cpwatch.settings import Settings
from runtime.consumers import BACKGROUND_WAKE_MS

log = logging.getLogger(__name__)

POLL_MS = 200
FETCH_WAIT_MS = 20


class HoldingsTable:
    """Rows of the holdings topic in read order (``rows``, append-only)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rows: list[HoldingUpdate] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._parts: list[TopicPartition] = []

    async def _start(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A fetch waiting for data holds the connection: the end-offsets request of the next
            # catch-up queued behind it for the default 500 ms. Partitions are paused between
            # catch-ups, and a fetch already in flight returns within this bound.
            fetch_max_wait_ms=FETCH_WAIT_MS,
            consumer_timeout_ms=BACKGROUND_WAKE_MS,  # paused but for catch-ups: resumes wake it
            **self.settings.aiokafka_client_kwargs(),
        )
        await consumer.start()
        topic = self.settings.topic(t.HOLDINGS)
        # A group-less consumer only keeps metadata of what it subscribed to; ask the cluster.
        cluster = await consumer._client.fetch_all_metadata()  # noqa: SLF001
        numbers = cluster.partitions_for_topic(topic) or set()
        if not numbers:
            await consumer.stop()
            raise RuntimeError(f"topic {topic} has no partitions (not created?)")
        self._parts = [TopicPartition(topic, p) for p in sorted(numbers)]
        consumer.assign(self._parts)
        await consumer.seek_to_beginning(*self._parts)
        consumer.pause(*self._parts)  # fetched only during a catch-up
        self._consumer = consumer
        return consumer

    async def catch_up(self) -> int:
        """Read every row up to the end offsets as of now; return how many rows were new."""
        consumer = self._consumer or await self._start()
        ends = await consumer.end_offsets(self._parts)
        before = len(self.rows)
        behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
        consumer.resume(*behind)
        while behind:
            polled = await consumer.getmany(*behind, timeout_ms=POLL_MS, max_records=10_000)
            for records in polled.values():
                for r in records:
                    try:
                        self.rows.append(HoldingUpdate.parse(r.value))
                    except RecordError as exc:
                        log.debug("holdings %s@%d skipped: %s", r.partition, r.offset, exc)
            behind = [tp for tp in behind if await consumer.position(tp) < ends[tp]]
        consumer.pause(*self._parts)
        metrics.HOLDINGS_LOADED.set(len(self.rows))
        return len(self.rows) - before

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
