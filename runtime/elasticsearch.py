"""Bulk writes to Elasticsearch with deterministic ids, retries and dead-lettering.

Settings used: es_url, es_api_key / es_username+es_password, es_ca_file, es_request_timeout.
The caller awaits ``write`` before taking the next batch, so Kafka offsets only advance after
Elasticsearch acknowledged; while Elasticsearch is down ``write`` keeps retrying and the
stream simply stops consuming (back pressure, bounded memory).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import AsyncElasticsearch, ConnectionError, TransportError
from elasticsearch.helpers import async_streaming_bulk
from elasticsearch.serializer import OrjsonSerializer

from cpwatch import metrics
from cpwatch.settings import Settings

log = logging.getLogger(__name__)

RETRY_STATUS = (429, 502, 503, 504)
MAX_BACKOFF_S = 30.0


def async_client(settings: Settings) -> AsyncElasticsearch:
    # orjson for bodies and responses: decoding bulk responses (one item per document) with the
    # standard json module took 11% of the worker's time in the sink benchmark.
    return AsyncElasticsearch(
        **settings.es_client_kwargs(),
        retry_on_timeout=True,
        max_retries=2,
        serializer=OrjsonSerializer(),
    )


@dataclass
class BulkResult:
    indexed: int = 0
    rejected: list[tuple[dict[str, Any], str]] = field(default_factory=list)


@dataclass
class BulkWriter:
    """Index documents as ``{"_index", "_id", "_source"}`` actions; never drops one silently."""

    client: AsyncElasticsearch
    on_rejected: Callable[[dict[str, Any], str], Awaitable[None]]
    chunk_size: int = 500

    async def write(self, actions: list[dict[str, Any]], *, refresh: bool = False) -> BulkResult:
        """Index a batch; returns only when every document is indexed or dead-lettered.

        ``refresh`` makes the batch searchable before returning (for rare, urgent documents).
        """
        result = BulkResult()
        attempt = 0
        pending = actions
        index = metrics.logical_index(str(actions[0].get("_index"))) if actions else "none"
        t0 = time.perf_counter()
        while pending:
            try:
                retry: list[dict[str, Any]] = []
                # Error items name the concrete index behind an alias, so match on _id alone:
                # one writer call targets one logical index.
                by_id = {a["_id"]: a for a in pending}
                async for ok, item in async_streaming_bulk(
                    self.client,
                    pending,
                    chunk_size=self.chunk_size,
                    max_retries=5,  # the helper resends only 429'd documents
                    initial_backoff=0.2,
                    max_backoff=5,
                    raise_on_error=False,
                    raise_on_exception=True,
                    retry_on_status=RETRY_STATUS,
                    **({"refresh": "true"} if refresh else {}),
                ):
                    info = next(iter(item.values()))
                    if ok:
                        result.indexed += 1
                        continue
                    action = by_id.get(info.get("_id"), {"_id": info.get("_id"), "_source": {}})
                    if info.get("status", 0) >= 500 or info.get("status") == 429:
                        retry.append(action)
                        metrics.ES_BULK_ERRORS.labels(index, "retried").inc()
                    else:
                        metrics.ES_BULK_ERRORS.labels(index, "rejected").inc()
                        reason = str(info.get("error", info))[:1000]
                        result.rejected.append((action, reason))
                        await self.on_rejected(action, reason)
                pending = retry
            except (ConnectionError, TransportError) as exc:
                metrics.ES_BULK_ERRORS.labels(index, "unavailable").inc()
                log.warning(
                    "elasticsearch unavailable (%s); retrying batch of %d", exc, len(pending)
                )
            if pending:
                attempt += 1
                delay = min(MAX_BACKOFF_S, 0.5 * 2 ** min(attempt, 6))
                await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter
        if actions:
            metrics.ES_BULK.labels(index).observe(time.perf_counter() - t0)
        return result
