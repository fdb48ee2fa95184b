"""BulkWriter against the real Elasticsearch: chunked bodies, refusals mapped to their documents."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch

from cpwatch.settings import Settings
from runtime.elasticsearch import BulkWriter, async_client

pytestmark = pytest.mark.integration


def _actions(index: str, bad: set[int], n: int) -> list[dict[str, Any]]:
    """``n`` documents; those in ``bad`` carry a value the index's integer field refuses. Even
    ones are sent as the record's own bytes (the sinks' form), odd ones as dicts."""
    out = []
    for i in range(n):
        doc = {"n": "not a number" if i in bad else i, "title": f"doc é {i}"}
        src: Any = orjson.dumps(doc) if i % 2 == 0 else doc
        out.append({"_index": index, "_id": f"d{i}", "_source": src})
    return out


def test_chunks_index_everything_and_refusals_reach_their_own_documents(stack: Settings) -> None:
    index = f"t-bulk-writer-{uuid.uuid4().hex[:8]}"
    es = Elasticsearch(**stack.es_client_kwargs())
    es.indices.create(index=index, mappings={"properties": {"n": {"type": "integer"}}})
    try:
        refused: list[tuple[str, str]] = []

        async def on_rejected(action: dict[str, Any], reason: str) -> None:
            refused.append((action["_id"], reason))

        async def write(actions: list[dict[str, Any]]) -> tuple[int, list[str]]:
            client = async_client(stack)
            try:
                res = await BulkWriter(client, on_rejected, chunk_size=3).write(actions)
            finally:
                await client.close()
            return res.indexed, [a["_id"] for a, _ in res.rejected]

        # Ten documents in four requests of at most three; refusals in the second and last.
        actions = _actions(index, {4, 9}, 10)
        indexed, rejected = asyncio.run(write(actions))
        assert (indexed, rejected) == (8, ["d4", "d9"])
        assert [i for i, _ in refused] == ["d4", "d9"]
        assert all("n" in reason and "number" in reason.lower() for _, reason in refused)
        es.indices.refresh(index=index)
        assert es.count(index=index)["count"] == 8
        assert es.get(index=index, id="d3")["_source"] == {"n": 3, "title": "doc é 3"}
        assert es.get(index=index, id="d6")["_source"] == {"n": 6, "title": "doc é 6"}
        assert not es.exists(index=index, id="d4")

        # The same batch again (a replay after a crash): the ids make it change nothing.
        refused.clear()
        assert asyncio.run(write(actions)) == (8, ["d4", "d9"])
        es.indices.refresh(index=index)
        assert es.count(index=index)["count"] == 8
    finally:
        es.indices.delete(index=index)
        es.close()


def test_an_empty_batch_sends_nothing(stack: Settings) -> None:
    async def write() -> int:
        client = async_client(stack)
        try:

            async def never(action: dict[str, Any], reason: str) -> None:
                raise AssertionError(reason)

            return (await BulkWriter(client, never).write([])).indexed
        finally:
            await client.close()

    assert asyncio.run(write()) == 0
