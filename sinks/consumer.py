"""Sink input without Faust's per-message path: one plain consumer group per sink.

A sink only copies records into Elasticsearch. Read through a Faust agent it paid Faust's
per-message cost (a do-nothing agent reads ~17k messages/s here) and reached a third of a bare
bulk loader's speed. Each sink here polls a batch with aiokafka, hands it to its writer, and
commits exactly the polled offsets once the writer returned, i.e. once Elasticsearch
acknowledged or the document was dead-lettered. A crash or rebalance before the commit replays
the batch; ids are deterministic, so a replay overwrites and never duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from cpwatch import metrics
from cpwatch.settings import Settings
from runtime.consumers import IDLE_POLL_MS, commit_polled, group_consumer, pace_fetches

log = logging.getLogger(__name__)

LAG_EVERY_S = 5.0
# The writer retries while Elasticsearch is down, however long: staying in the group through
# that is intended back pressure, not a stuck consumer.
MAX_POLL_INTERVAL_MS = 24 * 3600 * 1000


@dataclass
class SinkConsumer:
    settings: Settings
    topic: str  # logical topic name
    group: str  # suffix of the consumer group id: one group per sink
    handle: Callable[[list[ConsumerRecord[Any, bytes]]], Awaitable[None]]
    batch: int

    async def run(self) -> None:
        consumer = group_consumer(
            self.settings, self.topic, self.group, max_poll_interval_ms=MAX_POLL_INTERVAL_MS
        )
        await consumer.start()
        # Lag is reported beside the poll loop: that loop blocks while Elasticsearch is down,
        # exactly when the lag matters.
        reporter = asyncio.create_task(self._report_lag(consumer))
        try:
            while True:
                polled = await consumer.getmany(timeout_ms=IDLE_POLL_MS, max_records=self.batch)
                records = [m for msgs in polled.values() for m in msgs]
                pace_fetches(consumer, idle=not records)
                if records:
                    await self.handle(records)
                    await commit_polled(consumer, polled, self.group)
        finally:
            reporter.cancel()
            await consumer.stop()

    async def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            await asyncio.sleep(LAG_EVERY_S)
            try:
                tps = list(consumer.assignment())
                if not tps:
                    continue
                ends = await consumer.end_offsets(tps)
                # One request for every partition's commit; ``committed`` asks per partition,
                # which made 32 round trips every 5 s for the four sinks of a worker.
                done = await consumer._coordinator.fetch_committed_offsets(tps)  # noqa: SLF001
                for tp, end in ends.items():
                    at = done[tp].offset if tp in done else 0
                    metrics.CONSUMER_LAG.labels(
                        metrics.logical_topic(tp.topic), str(tp.partition)
                    ).set(max(0, end - max(at, 0)))
            except Exception as exc:  # noqa: BLE001 - a metrics failure must not stop a sink
                log.warning("%s: consumer lag: %r", self.group, exc)
