"""The worker's Faust producer keeps in its metadata cache every topic it writes, on the real
broker (runtime/faust_producer.py).

The first test shows what that guards against on a plain aiokafka producer: once its cache was
filled with every topic, a send to a topic missing there makes the next refresh drop the
others, so a batch queued for one of them can no longer find its leader."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from cpwatch import topics as t
from cpwatch.settings import Settings
from runtime.faust_app import create_app

pytestmark = pytest.mark.integration
LATE = "late-topic"  # created mid-test, after the producer's cache was filled


def test_a_plain_producer_drops_a_written_topic_from_its_cache(kafka_settings: Settings) -> None:
    s = kafka_settings
    written, late = s.topic(t.NEWS), s.topic(LATE)

    async def scenario() -> tuple[object, object, set[str]]:
        producer = AIOKafkaProducer(**s.aiokafka_client_kwargs())
        await producer.start()
        try:
            client = producer.client
            await client.force_metadata_update()  # what Faust does after declaring a topic
            await producer.send_and_wait(written, b"v")
            before = client.cluster.partitions_for_topic(written)
            t.ensure_topics(s, (t.TopicSpec(LATE, partitions=1),))
            await producer.send_and_wait(late, b"v")  # not cached: tracked, then refreshed
            return before, client.cluster.partitions_for_topic(written), set(client._topics)
        finally:
            await producer.stop()

    before, after, tracked = asyncio.run(scenario())
    assert before, "the topic written first was in the cache"
    assert written not in tracked
    assert after is None, "aiokafka no longer drops untracked topics: faust_producer may go"


def test_the_worker_producer_keeps_every_topic_it_writes(kafka_settings: Settings) -> None:
    s = kafka_settings
    written, late = s.topic(t.NEWS), s.topic(LATE)

    async def scenario() -> tuple[object, set[str], set[str]]:
        app, _ = create_app(s)
        await app.producer.start()
        try:
            client = app.producer._ensure_producer().client  # type: ignore[attr-defined]
            await app.producer.create_topic(late, partitions=1, replication=s.topic_replication)
            queued = await app.producer.send(written, b"k", b"v", None, None, None)
            await app.producer.send_and_wait(late, b"k", b"v", None, None, None)
            # Queued before the refresh the late topic forced: it still finds its leader.
            await asyncio.wait_for(queued, timeout=60)
            return (
                client.cluster.partitions_for_topic(written),
                set(client.cluster.topics()),
                set(client._topics),
            )
        finally:
            await app.producer.stop()

    partitions, cached, tracked = asyncio.run(scenario())
    assert partitions == set(range(s.topic_partitions))
    assert late in cached
    assert cached <= tracked, f"cached but untracked: {cached - tracked}"
    assert {s.topic(spec.name) for spec in t.TOPICS} <= tracked
