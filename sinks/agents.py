"""Sinks: output topics → Elasticsearch, in time-bounded batches, inside the Faust worker.

Each sink reads its topic with a plain consumer group (``sinks.consumer``) rather than a Faust
agent, awaits the bulk write, and only then commits the batch's offsets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from typing import Any

import faust
import orjson

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.records import DeadLetter
from cpwatch.settings import Settings
from sinks.consumer import SinkConsumer
from sinks.elasticsearch import BulkWriter, async_client
from sinks.indices import TIME_SERIES, monthly_index, prune_time_series
from streams.app import Topics

log = logging.getLogger(__name__)

BATCH = 1_000
WITHIN_S = 0.5
ALERT_WITHIN_S = 0.02


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    es = async_client(settings)
    dlq = topics[t.DEAD_LETTER]

    async def rejected(action: dict[str, Any], reason: str) -> None:
        metrics.count_dead_lettered("sink-es", metrics.logical_index(str(action.get("_index"))))
        src = action.get("_source", {})
        payload = src if isinstance(src, bytes) else json.dumps(src, default=str)
        record = DeadLetter.of("sink-es", reason, payload)
        await dlq.send(key=b"sink-es", value=record.to_bytes())

    writer = BulkWriter(es, on_rejected=rejected)
    consumers: list[SinkConsumer] = []

    def sink(
        topic: str, index: str, id_field: str, within: float = WITHIN_S, refresh: bool = False
    ) -> None:
        alias = settings.index(index)

        def target(doc: dict[str, Any]) -> str:
            if index in TIME_SERIES:
                return monthly_index(settings, index, str(doc["ts"]))
            return alias

        async def handle(values: list[bytes]) -> None:
            metrics.count_in(f"sink-{index}", topic, len(values))
            actions = []
            event_times = []
            for raw in values:
                try:
                    doc = orjson.loads(raw)
                    # The record's own bytes are the document: parsed for its id and index
                    # only, never encoded again.
                    actions.append(
                        {"_index": target(doc), "_id": str(doc[id_field]), "_source": raw}
                    )
                    event_times.append(doc.get("fetched_at") or doc.get("ts"))
                except (ValueError, KeyError, TypeError) as exc:
                    rec = DeadLetter.of("sink-es", f"unindexable record: {exc!r}", raw)
                    metrics.count_dead_lettered("sink-es", topic)
                    await dlq.send(key=b"sink-es", value=rec.to_bytes())
            # Two bulk requests in flight: the worker encodes one while Elasticsearch indexes
            # the other. Split by id, so later versions of a document (a story's growing member
            # list) stay after earlier ones. Offsets are committed only after both returned.
            halves: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
            for a in actions:
                halves[zlib.crc32(a["_id"].encode()) & 1].append(a)
            results = await asyncio.gather(*(writer.write(h, refresh=refresh) for h in halves))
            metrics.count_out(f"sink-{index}", index, sum(r.indexed for r in results))
            now = time.time()
            for event_time in event_times:
                metrics.observe_end_to_end(f"sink-{index}", event_time, now)

        consumers.append(SinkConsumer(settings, topic, f"sink-{index}", handle, within, BATCH))

    sink(t.ARTICLES, "articles", "id")
    sink(t.POLICY_EVENTS, "events", "cluster_id")  # one document per story, however many outlets
    # Alerts are rare and urgent: a short batch window and a refresh per bulk make each one
    # searchable well inside a second instead of after the 1 s refresh interval.
    sink(t.ALERTS, "alerts", "fingerprint", within=ALERT_WITHIN_S, refresh=True)
    sink(t.TREASURY_VALUATIONS, "treasury-valuations", "id")

    @app.task
    async def run_sinks() -> None:
        # Runs for the worker's lifetime; cancelled (consumers stopped) at shutdown.
        await asyncio.gather(*(c.run() for c in consumers))

    @app.timer(interval=3600.0, on_leader=True)
    async def prune_valuations() -> None:
        """Drop monthly valuation indices past retention (hourly, on one worker)."""
        from datetime import UTC, datetime

        from elasticsearch import Elasticsearch

        sync_es = Elasticsearch(**settings.es_client_kwargs())
        try:
            today = datetime.now(UTC).date().isoformat()
            await app.loop.run_in_executor(
                None,
                prune_time_series,
                sync_es,
                settings,
                "treasury-valuations",
                settings.valuation_retention_months,
                today,
            )
        finally:
            sync_es.close()

    @app.on_before_shutdown.connect
    def _close(app: faust.App, **_: Any) -> None:
        # The loop is still running here; close the client's pooled connections on it.
        app.loop.create_task(es.close())
