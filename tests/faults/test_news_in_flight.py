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
from typing import Any

import pytest
from faust.serializers import codecs
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
    send_holdings,
    ticks,
)
from tests.worker import dump_tasks, threads

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
    the news offsets committed against the ends, the positions the agent saved, and where the
    worker's tasks and threads are, so a stall and a loss read differently."""
    missing = sorted(want - set(es_ids(s, "articles")))
    alive = w.alive()
    group = f"{s.topic_prefix}{s.faust_app_id}"
    reader = KafkaConsumer(group_id=group, enable_auto_commit=False, **s.kafka_client_kwargs())
    try:
        tps = [
            TopicPartition(s.topic(t.NEWS), p)
            for p in reader.partitions_for_topic(s.topic(t.NEWS)) or ()
        ]
        ends = reader.end_offsets(tps)
        offsets = {tp.partition: (reader.committed(tp), ends[tp]) for tp in tps}
        out = s.topic(t.ARTICLES)
        sent = sum(
            reader.end_offsets(
                [TopicPartition(out, p) for p in reader.partitions_for_topic(out) or ()]
            ).values()
        )
        changelog = f"{group}-news-positions-changelog"
        rows: dict[Any, Any] = {}
        cl = [TopicPartition(changelog, p) for p in reader.partitions_for_topic(changelog) or ()]
        reader.unsubscribe()
        reader.assign(cl)
        reader.seek_to_beginning()
        cl_end = reader.end_offsets(cl)
        while any(reader.position(tp) < cl_end[tp] for tp in cl):
            for msgs in reader.poll(timeout_ms=1000).values():
                for m in msgs:
                    rows[m.key] = codecs.loads("json", m.value) if m.value else None
    finally:
        reader.close()
    stacks = ""
    if w.alive() and w.proc is not None:
        # Where every asyncio task waits and Faust's view of its partitions (runtime/task_dump.py),
        # then the threads (py-spy).
        dump_tasks(w.proc, w.log_path)
        stacks = threads(w.proc.pid)
    return (
        f"worker alive: {alive}; missing {len(missing)} of {len(want)}: {missing[:10]}\n"
        f"news (committed, end) by partition: {offsets}; on the articles topic: {sent}\n"
        f"news-positions rows: {rows}\nworker threads:\n{stacks}\nworker log:\n{w.tail(60_000)}"
    )


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
