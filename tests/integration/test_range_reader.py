"""RangeReader on the real broker: it returns exactly the asked offsets of one partition, and
what a partition no longer holds is passed over rather than waited for."""

from __future__ import annotations

import asyncio

import pytest
from kafka import KafkaProducer

from cpwatch import topics as t
from cpwatch.settings import Settings
from runtime.range_reader import RangeReader

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
