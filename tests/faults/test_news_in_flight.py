"""A worker killed while a news batch is being classified loses none of it.

classify-news keeps two batches in flight (streams/news_agent.py). Faust must not commit a
batch's offsets before its outputs are acknowledged: with ``take_events`` it did, and a worker
killed then lost the batch when no later message on its partitions revealed the hole (CI caught
it as 26 of 2,000 articles missing in the kill -9 test). Here the classifier process is frozen
so a batch stays in flight for as long as the test needs, the worker commits whatever it will
(ticks through the treasury agent show that a commit cycle passed), then it is killed.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from bench.children import child_pids
from cpwatch import topics as t
from cpwatch.settings import Settings
from producers.kafka import Producer
from tests.conftest import wait_for
from tests.faults.conftest import (
    Worker,
    articles,
    committed,
    es_count,
    es_ids,
    news_offsets,
    send_holdings,
    ticks,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

WARM, IN_FLIGHT, N_TICKS = 100, 150, 2_000  # IN_FLIGHT: one batch (BATCH = 200)
SEED = 20261203


def classifier_processes(worker_pid: int) -> list[int]:
    """The worker's spawned children (runtime/process_pool.py)."""
    found = []
    for pid in child_pids(worker_pid):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue  # gone meanwhile
    return found


def internal_end(settings: Settings, name: str) -> int:
    topic = f"{settings.topic_prefix}{settings.faust_app_id}-{name}"
    reader = KafkaConsumer(group_id=None, **settings.kafka_client_kwargs())
    try:
        tps = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or []]
        return sum(reader.end_offsets(tps).values()) if tps else 0
    finally:
        reader.close()


def news_path_state(s: Settings, w: Worker, want: set[str]) -> str:
    """Where the news path stands when the articles are not all searchable: what is missing,
    the news offsets and saved positions (news_offsets), then the worker's tasks, threads and
    log, so a stall and a loss read differently."""
    missing = sorted(want - set(es_ids(s, "articles")))
    return f"missing {len(missing)} of {len(want)}: {missing[:10]}\n{news_offsets(s)}\n{w.report()}"


def test_kill_with_a_news_batch_in_flight(
    kafka_settings: Settings, restartable_worker: Worker
) -> None:
    s, w = kafka_settings, restartable_worker
    news = articles(WARM + IN_FLIGHT, SEED)
    send_holdings(s)
    w.start()
    with Producer(s) as p:
        for a in news[:WARM]:
            p.send(t.NEWS, a.id, a)
    wait_for(lambda: es_count(s, "articles") >= WARM, timeout=180, context=w.tail)
    assert w.proc is not None
    frozen = classifier_processes(w.proc.pid)
    assert frozen, "no classifier process found beside the worker"

    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)  # the next batches stay in flight
    try:
        with Producer(s) as p:
            for a in news[WARM:]:
                p.send(t.NEWS, a.id, a)
            p.flush()
            for k in ticks(N_TICKS, SEED):
                p.send(t.PRICE_TICKS, k.key, k)

        # The ticks were sent after the articles, so once the treasury agent's input is
        # committed to its end, the worker has fetched the articles and committed since.
        def ticks_committed() -> bool:
            end = internal_end(s, "valuation-input")
            return committed(s, t.PRICE_TICKS) >= N_TICKS and 0 < end <= committed(
                s, "valuation-input", internal=True
            )

        wait_for(ticks_committed, timeout=180, context=w.tail)
        assert len(es_ids(s, "articles")) == WARM  # nothing of the frozen batches got through
        w.kill9()
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    w.start()
    want = {a.id for a in news}
    wait_for(
        lambda: set(es_ids(s, "articles")) >= want,
        timeout=240,
        context=lambda: news_path_state(s, w, want),
    )
    got = es_ids(s, "articles")
    assert len(got) == len(set(got)) == len(want)
