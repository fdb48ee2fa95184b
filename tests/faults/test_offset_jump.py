"""The worker's committed news offsets moved past articles it never processed (what Faust's
gap handling can do after a restart): the news agent's saved input positions make it read
them anyway, so every article is still indexed once."""

from __future__ import annotations

import re

import pytest
from kafka import KafkaConsumer

from cpwatch import topics as t
from cpwatch.settings import Settings
from producers.kafka import Producer
from tests.conftest import wait_for
from tests.faults.conftest import (
    Worker,
    articles,
    commit_to_end,
    end_offsets,
    es_count,
    es_ids,
    news_offsets,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SEED = 20261127
BEFORE, SKIPPED, AFTER = 120, 80, 40


def send(s: Settings, batch: list) -> None:  # noqa: ANN001 - NewsArticle list
    with Producer(s) as p:
        for a in batch:
            p.send(t.NEWS, a.id, a)
        p.flush()


def test_articles_committed_past_unprocessed_are_still_indexed(
    kafka_settings: Settings, restartable_worker: Worker
) -> None:
    s, w = kafka_settings, restartable_worker
    news = articles(BEFORE + SKIPPED + AFTER, SEED)
    w.start()
    send(s, news[:BEFORE])
    wait_for(lambda: es_count(s, "articles") >= BEFORE, timeout=180, interval=1.0, context=w.report)
    w.stop()  # graceful: the group is left empty, so its offsets can be altered

    send(s, news[BEFORE : BEFORE + SKIPPED])
    ends = commit_to_end(s, s.topic(t.NEWS))
    assert sum(ends.values()) == BEFORE + SKIPPED

    w.start()
    send(s, news[BEFORE + SKIPPED :])
    wait_for(
        lambda: es_count(s, "articles") >= len(news),
        timeout=180,
        interval=1.0,
        context=lambda: f"{news_offsets(s)}\n{w.report()}",
    )
    ids = es_ids(s, "articles")
    assert sorted(ids) == sorted(a.id for a in news)
    log = w.log_path.read_text(errors="replace")
    # Each partition's only hole is the range committed past: Faust hands the agent every
    # message from the committed offset on. It used to drop the first ones it fetched while
    # the worker became ready (runtime/flow_control.py), which showed as further jumps.
    restarted = log.split("===== start 1")[1]
    jumps = re.findall(rf"{re.escape(s.topic(t.NEWS))}-(\d+) jumped from \d+ to (\d+);", restarted)
    assert sorted((int(p), int(to)) for p, to in jumps) == sorted(
        (tp.partition, end) for tp, end in ends.items()
    ), w.tail(20_000)
    refilled = sum(
        int(line.split("read the ")[1].split()[0])
        for line in log.splitlines()
        if "read the " in line
    )
    assert refilled >= SKIPPED, (
        w.tail()
    )  # more only if a saved position lagged: re-read, not doubled
    # Each saved position sits on the changelog partition of its input partition, where the
    # worker that owns that input partition restores it (runtime/position_table.py).
    changelog = f"{s.topic_prefix}{s.faust_app_id}-news-positions-changelog"
    reader = KafkaConsumer(
        changelog,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
        **s.kafka_client_kwargs(),
    )
    rows = [(m.partition, m.key) for m in reader if m.value is not None]
    reader.close()
    assert rows and all(int(key.split(b"~")[0]) == part for part, key in rows), rows


def test_last_articles_committed_past_are_still_indexed(
    kafka_settings: Settings, restartable_worker: Worker
) -> None:
    """The same jump over each partition's last articles: no later article reveals the hole,
    and the news topic is not the worker's to nudge. The stall watch seeks Faust's consumer
    back to the saved position instead (runtime/nudge.py)."""
    s, w = kafka_settings, restartable_worker
    news = articles(BEFORE + SKIPPED, SEED + 1)
    w.start()
    send(s, news[:BEFORE])
    wait_for(lambda: es_count(s, "articles") >= BEFORE, timeout=180, interval=1.0, context=w.report)
    w.stop()

    before = end_offsets(s, s.topic(t.NEWS))
    send(s, news[BEFORE:])
    ends = commit_to_end(s, s.topic(t.NEWS))
    assert sum(ends.values()) == len(news)

    w.start()  # nothing more is sent: the skipped articles are every partition's last
    wait_for(
        lambda: es_count(s, "articles") >= len(news),
        timeout=180,
        interval=1.0,
        context=lambda: f"{news_offsets(s)}\n{w.report()}",
    )
    assert sorted(es_ids(s, "articles")) == sorted(a.id for a in news)
    restarted = w.log_path.read_text(errors="replace").split("===== start 1")[1]
    sought = re.findall(
        rf"{re.escape(s.topic(t.NEWS))}-(\d+) stands at \d+ of \d+; sought", restarted
    )
    skipped = {tp.partition for tp, end in ends.items() if end > before[tp]}
    assert {int(p) for p in sought} == skipped, w.tail()
