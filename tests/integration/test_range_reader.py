"""RangeReader on the real broker: it returns exactly the asked offsets of one partition, and
what a partition no longer holds is passed over rather than waited for. GroupStart: where a
group resumes several partitions, in one question."""

from __future__ import annotations

import asyncio

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata

from cpwatch import topics as t
from cpwatch.settings import Settings
from runtime.range_reader import GroupStart, RangeReader

pytestmark = pytest.mark.integration


def fill_partition(s: Settings, n: int, partition: int) -> None:
    producer = KafkaProducer(**s.kafka_client_kwargs())
    try:
        for i in range(n):
            producer.send(
                s.topic(t.NEWS), key=f"k{i}".encode(), value=f"v{i}".encode(), partition=partition
            )
        producer.flush(timeout=30)
    finally:
        producer.close()


def commit(s: Settings, group: str, topic: str, partition: int, offset: int) -> None:
    consumer = KafkaConsumer(group_id=group, enable_auto_commit=False, **s.kafka_client_kwargs())
    try:
        consumer.commit({TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)})
    finally:
        consumer.close()


def test_reads_exactly_the_asked_range_of_one_partition(kafka_settings: Settings) -> None:
    s = kafka_settings
    fill_partition(s, 500, partition=1)
    fill_partition(s, 50, partition=2)  # another partition's messages must not leak in
    got = asyncio.run(RangeReader(s)(s.topic(t.NEWS), 1, 123, 457))
    assert [r.message.offset for r in got] == list(range(123, 457))
    assert [r.value for r in got] == [f"v{i}".encode() for i in range(123, 457)]
    assert {(r.message.topic, r.message.partition) for r in got} == {(s.topic(t.NEWS), 1)}
    assert got[0].key == b"k123" and got[0].message.tp.partition == 1


def test_an_empty_range_reads_nothing(kafka_settings: Settings) -> None:
    s = kafka_settings
    fill_partition(s, 10, partition=0)
    assert asyncio.run(RangeReader(s)(s.topic(t.NEWS), 0, 4, 4)) == []


def test_group_start_answers_for_several_partitions_at_once(kafka_settings: Settings) -> None:
    """Committed offset where the group committed, else the first offset still retained."""
    s = kafka_settings
    topic, group = s.topic(t.NEWS), f"{s.topic_prefix}starts"
    for p in range(3):
        fill_partition(s, 10, partition=p)
    commit(s, group, topic, 0, 7)
    admin = KafkaAdminClient(**s.kafka_client_kwargs())
    try:
        admin.delete_records({TopicPartition(topic, 1): 4})  # retention took offsets 0-3
    finally:
        admin.close()
    got = asyncio.run(GroupStart(s, group)(topic, [2, 0, 1]))
    assert got == {0: 7, 1: 4, 2: 0}


def test_group_start_asked_ahead_answers_as_of_the_assignment_once(
    kafka_settings: Settings,
) -> None:
    """A batch takes the answer asked at assignment (commits since are not looked at: only the
    member itself commits there, after processing); the next question is asked afresh."""
    s = kafka_settings
    topic, group = s.topic(t.NEWS), f"{s.topic_prefix}ahead"
    for p in range(2):
        fill_partition(s, 10, partition=p)
    commit(s, group, topic, 0, 3)
    starts = GroupStart(s, group)

    async def scenario() -> list[dict[int, int]]:
        await starts.ask_ahead(topic, [0, 1])
        await asyncio.to_thread(commit, s, group, topic, 0, 5)
        return [await starts(topic, [0]), await starts(topic, [0, 1])]

    ahead, afresh = asyncio.run(scenario())
    assert ahead == {0: 3}
    assert afresh == {0: 5, 1: 0}
