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
from aiokafka import ConsumerRecord

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.deadletters import letter
from cpwatch.settings import Settings
from runtime.elasticsearch import BulkWriter, async_client
from runtime.faust_app import Topics
from sinks.consumer import SinkConsumer
from sinks.indices import TIME_SERIES, monthly_index, prune_time_series

log = logging.getLogger(__name__)

BATCH = 1_000
# Documents from which a batch is written as two concurrent bulk requests. A request costs the
# worker about 1 ms of CPU however small it is, and a document about 6 µs.
SPLIT_AT = 200


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    es = async_client(settings)
    dlq = topics[t.DEAD_LETTER]
    consumers: list[SinkConsumer] = []

    def sink(topic: str, index: str, id_field: str, refresh: bool = False) -> None:
        alias = settings.index(index)
        stage = f"sink-{index}"
        letters: list[Any] = []  # this batch's dead letters, acknowledged before the commit
        where: dict[str, ConsumerRecord[Any, bytes]] = {}  # document id -> its input record

        def target(doc: dict[str, Any]) -> str:
            if index in TIME_SERIES:
                return monthly_index(settings, index, str(doc["ts"]))
            return alias

        async def give_up(reason: str, raw: bytes, rec: ConsumerRecord[Any, bytes] | None) -> None:
            record = letter(
                "sink-es",
                reason,
                raw,
                topic=rec.topic if rec else None,
                partition=rec.partition if rec else None,
                offset=rec.offset if rec else None,
            )
            letters.append(await dlq.send(key=b"sink-es", value=record.to_bytes()))

        async def rejected(action: dict[str, Any], reason: str) -> None:
            src = action.get("_source", {})
            raw = src if isinstance(src, bytes) else json.dumps(src, default=str).encode()
            await give_up(reason, raw, where.get(str(action.get("_id"))))

        writer = BulkWriter(es, on_rejected=rejected)

        async def handle(records: list[ConsumerRecord[Any, bytes]]) -> None:
            metrics.count_in(stage, topic, len(records))
            actions = []
            event_times = []
            where.clear()
            for rec in records:
                raw = rec.value or b""
                try:
                    doc = orjson.loads(raw)
                    # The record's own bytes are the document: parsed for its id and index
                    # only, never encoded again.
                    doc_id = str(doc[id_field])
                    actions.append({"_index": target(doc), "_id": doc_id, "_source": raw})
                    where[doc_id] = rec
                    event_times.append(doc.get("fetched_at") or doc.get("ts"))
                except (ValueError, KeyError, TypeError) as exc:
                    await give_up(f"unindexable record: {exc!r}", raw, rec)
            # A large batch goes as two bulk requests in flight: the worker encodes one while
            # Elasticsearch indexes the other. Split by id, so later versions of a document (a
            # story's growing member list) stay after earlier ones. A small batch goes whole:
            # a second request would cost more than the overlap saves (and, for alerts, a
            # second refresh). Offsets are committed only after the writes returned.
            parts: list[list[dict[str, Any]]] = [actions]
            if len(actions) >= SPLIT_AT:
                parts = [[], []]
                for a in actions:
                    parts[zlib.crc32(a["_id"].encode()) & 1].append(a)
            results = await asyncio.gather(*(writer.write(p, refresh=refresh) for p in parts))
            await asyncio.gather(*letters)
            letters.clear()
            metrics.count_out(stage, index, sum(r.indexed for r in results))
            now = time.time()
            for event_time in event_times:
                metrics.observe_end_to_end(stage, event_time, now)

        consumers.append(SinkConsumer(settings, topic, stage, handle, BATCH))

    sink(t.ARTICLES, "articles", "id")
    sink(t.POLICY_EVENTS, "events", "cluster_id")  # one document per story, however many outlets
    # Alerts are rare and urgent: a refresh per bulk makes each one searchable well inside a
    # second instead of after the 1 s refresh interval.
    sink(t.ALERTS, "alerts", "fingerprint", refresh=True)
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
