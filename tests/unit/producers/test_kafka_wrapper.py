"""Pins the engine-free parts of producers.kafka: signals and the memoised partitioner."""

from __future__ import annotations

import os
import signal
from typing import Any

from kafka.partitioner import DefaultPartitioner

from producers.kafka import TUNING, stop_on_signals
from producers.partitioner import MemoPartitioner


def test_sigterm_sets_stop_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(2.0)
    assert signal.getsignal(signal.SIGTERM) is before


def test_delivery_guarantees_are_on() -> None:
    assert TUNING["acks"] == "all" and TUNING["enable_idempotence"] is True
    assert TUNING["max_in_flight_requests_per_connection"] <= 5  # idempotence's ceiling
    assert all(TUNING[k] > 0 for k in ("request_timeout_ms", "delivery_timeout_ms", "max_block_ms"))


class _Cluster:
    def __init__(self, partitions: dict[str, set[int]]) -> None:
        self._p = partitions

    def topics(self) -> set[str]:
        return set(self._p)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self._p.get(topic)

    def available_partitions_for_topic(self, topic: str) -> set[int] | None:
        return self._p.get(topic)


def _both(topic: str, key: bytes | None, cluster: Any, memo: MemoPartitioner) -> tuple[int, int]:
    ours = memo.partition(topic, key, key, b"v", b"v", cluster)
    theirs = DefaultPartitioner().partition(topic, key, key, b"v", b"v", cluster)
    return ours, theirs


def test_memo_partitioner_agrees_with_default_and_stays_bounded() -> None:
    cluster = _Cluster({"t4": set(range(4)), "t7": set(range(7))})
    memo = MemoPartitioner(max_memo=50)
    for i in range(500):
        for topic in ("t4", "t7"):
            ours, theirs = _both(topic, f"coinbase:BTC-{i}".encode(), cluster, memo)
            assert ours == theirs
    assert len(memo._memo) <= 50


def test_memo_partitioner_follows_partition_count_changes() -> None:
    cluster = _Cluster({"t": set(range(2))})
    memo = MemoPartitioner()
    keys = [f"k{i}".encode() for i in range(40)]
    [memo.partition("t", k, k, None, None, cluster) for k in keys]
    cluster._p["t"] = set(range(6))
    for k in keys:
        assert _both("t", k, cluster, memo)[0] == _both("t", k, cluster, memo)[1]


def test_memo_partitioner_null_key_uses_a_real_partition() -> None:
    cluster = _Cluster({"t": {0, 1, 2}})
    assert MemoPartitioner().partition("t", None, None, b"v", b"v", cluster) in {0, 1, 2}
