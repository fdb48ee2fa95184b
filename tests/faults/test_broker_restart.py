"""The Kafka broker stops mid-stream and comes back: producers retry, the worker reconnects,
and every alert and article is in Elasticsearch at the end.

This test stops the broker of the stack the session started; run it on a stack of its own
(e.g. CPWATCH_HOME, CPWATCH_KAFKA_BOOTSTRAP and CPWATCH_ES_URL on other ports), never on one
other people's tests share.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cpwatch import topics as t
from cpwatch.exceptions import EngineError
from cpwatch.settings import Settings
from producers.kafka import Producer
from tests.conftest import EXTERNAL, wait_for
from tests.faults.conftest import (
    Worker,
    alert_fingerprints,
    articles,
    es_count,
    es_ids,
    expected_alerts,
    read_topic,
    send_holdings,
    ticks,
    with_rules,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SEED = 7
N_TICKS = 30_000
N_ARTICLES = 600
CHUNKS = 60
OUTAGE_S = 10.0
RETRY_FOR_S = 180.0


def test_broker_restart_loses_nothing(
    kafka_settings: Settings, tmp_path: Path, restartable_worker: Worker
) -> None:
    if EXTERNAL:
        pytest.fail("this test stops Kafka: it needs a stack the session started itself")
    from deploy.stack import Stack

    began = time.monotonic()
    s = with_rules(kafka_settings, tmp_path)
    w = restartable_worker
    w.settings = s
    tick_list, news = ticks(N_TICKS, SEED), articles(N_ARTICLES, SEED)
    expected = {a.fingerprint for a in expected_alerts(s, tick_list)}
    assert expected

    send_holdings(s)
    w.start()

    retries: list[str] = []
    done, errors = threading.Event(), []

    def produce() -> None:
        """Chunk by chunk; a chunk that failed is sent again whole (ids make that harmless)."""
        per_tick, per_news = N_TICKS // CHUNKS, N_ARTICLES // CHUNKS
        p: Producer | None = None
        try:
            for c in range(CHUNKS):
                deadline = time.monotonic() + RETRY_FOR_S
                while True:
                    try:
                        if p is None:
                            p = Producer(s, client_id="fault-producer")
                        for k in tick_list[c * per_tick : (c + 1) * per_tick]:
                            p.send(t.PRICE_TICKS, k.key, k)
                        for a in news[c * per_news : (c + 1) * per_news]:
                            p.send(t.NEWS, a.id, a)
                        p.flush(timeout=30)
                        break
                    except EngineError as exc:
                        retries.append(f"chunk {c}: {exc}"[:200])
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(1.0)
                time.sleep(0.5)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            if p is not None:
                p.close(timeout=10)
            done.set()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    stack = Stack(s)
    # Mid-stream: once the worker has indexed its first articles. A fixed 8 s sleep stopped
    # the broker while a worker on a loaded box was still starting, and a Faust worker that
    # cannot bootstrap exits (the supervisor restarts it; this test checks the running case).
    wait_for(lambda: es_count(s, "articles") > 0, timeout=240, interval=0.5, context=w.report)
    stopped_at = time.monotonic() - began
    stack.stop("kafka")
    time.sleep(OUTAGE_S)
    stack.up()
    back_at = time.monotonic() - began
    assert done.wait(timeout=RETRY_FOR_S + 120), "producer did not finish"
    assert not errors, errors

    def everything_indexed() -> bool:
        return es_count(s, "alerts") >= len(expected) and es_count(s, "articles") >= N_ARTICLES

    try:
        wait_for(everything_indexed, timeout=240, interval=1.0, context=w.report)
    finally:
        print(f"broker stopped at +{stopped_at:.0f}s, back at +{back_at:.0f}s")
        print(f"producer retries {len(retries)}: {retries[:3]}")
        print(f"alerts {es_count(s, 'alerts')}/{len(expected)} articles {es_count(s, 'articles')}")
    time.sleep(3)
    assert w.alive(), w.tail()
    topic_fps, repeats = alert_fingerprints(read_topic(s, t.ALERTS))
    took = time.monotonic() - began
    print(f"alerts topic repeats {repeats}; duration {took:.0f}s")
    assert set(es_ids(s, "alerts")) == expected
    assert topic_fps == expected
    assert set(es_ids(s, "articles")) == {a.id for a in news}
