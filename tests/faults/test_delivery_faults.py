"""Notifications are never lost: kill -9 of the worker while digests are being delivered, and
Elasticsearch stopped while events are being matched.

Both tests stop processes of the stack the session uses (the second stops its Elasticsearch):
run them on a stack of their own (README, Fault tolerance).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from elasticsearch import Elasticsearch
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from pydantic import SecretStr

from cpwatch import topics as t
from cpwatch.settings import Settings
from tests.conftest import wait_for
from tests.faults.conftest import Worker, read_topic
from tests.faults.test_es_outage import es_down, running
from tests.receiver import HttpReceiver

pytestmark = [pytest.mark.integration, pytest.mark.faults]

TOKEN = "fault-token-8d7c6b5a4f"
SECRET = "fault-webhook-secret-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SEED = 20251201


@dataclass
class Receiver(HttpReceiver):
    """aiohttp on 127.0.0.1 in its own thread; answers 500 with probability ``fail_p``."""

    fail_p: float = 0.0
    seed: int = 0
    # (Idempotency-Key, item ids) of every 2xx answer, duplicates included
    got: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - test randomness

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        with self.lock:
            if self._rng.random() < self.fail_p:
                self.failed += 1
                return web.Response(status=500)
            ids = tuple(str(i["id"]) for i in body["items"])
            self.got.append((request.headers["Idempotency-Key"], ids))
        return web.Response(status=200)

    def ids(self) -> set[str]:
        with self.lock:
            return {i for _, ids in self.got for i in ids}

    def deduped(self) -> list[str]:
        """What a receiver that drops repeated Idempotency-Keys keeps, item by item."""
        seen: set[str] = set()
        out: list[str] = []
        with self.lock:
            for key, ids in self.got:
                if key not in seen:
                    seen.add(key)
                    out.extend(ids)
        return out


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    rs = [Receiver(), Receiver(), Receiver(fail_p=0.3, seed=SEED)]
    for r in rs:
        r.start()
    yield rs
    for r in rs:
        r.stop()


def setup(settings: Settings, receivers: list[Receiver]) -> Settings:
    """Settings for the worker, and one webhook subscription per receiver."""
    from api.routes_subscriptions import subscription_settings
    from api.server import create_app
    from sinks.indices import ensure_indices

    s = settings.model_copy(
        update={
            "delivery_ssrf_allowlist": "127.0.0.1",
            "delivery_max_attempts": 30,  # random 500s must never exhaust a delivery
            "delivery_backoff_base_s": 0.05,
            "delivery_backoff_cap_s": 0.5,
            "subscriptions_refresh_s": 1.0,
            "api_tokens": SecretStr(TOKEN),
        }
    )
    es = Elasticsearch(**s.es_client_kwargs())
    ensure_indices(es, s)
    es.close()
    app = create_app()
    app.dependency_overrides[subscription_settings] = lambda: s
    client = TestClient(app)
    for n, r in enumerate(receivers):
        body = {
            "name": f"reserve {n}",
            "query": "bitcoin AND reserve",
            "channel": {
                "type": "webhook",
                "url": f"http://127.0.0.1:{r.port}/hook",
                "secret": SECRET,
            },
            "group_wait": "1s",  # digests: items wait in groups when the worker dies
            "group_interval": "2s",
        }
        resp = client.post("/api/subscriptions", json=body, headers=AUTH)
        assert resp.status_code == 201, resp.text
    return s


def event(i: int) -> dict[str, Any]:
    return {
        "id": f"ev-{i}",
        "cluster_id": f"story-{i}",
        "title": f"State {i} adopts a strategic bitcoin reserve",
        "text": f"Lawmakers approved bill {i} creating a bitcoin reserve.",
        "published": "2025-05-28T10:00:00Z",
        "categories": ["reserve"],
        "countries": [],
        "orgs": [],
        "severity": 0.5,
    }


def produce(s: Settings, ids: range, stop: threading.Event, every_s: float) -> threading.Thread:
    """Send the events of ``ids`` in chunks of 10, one chunk per ``every_s``."""

    def run() -> None:
        p = KafkaProducer(**s.kafka_client_kwargs(), acks="all")
        try:
            chunk = list(ids)
            for k in range(0, len(chunk), 10):
                for i in chunk[k : k + 10]:
                    p.send(
                        s.topic(t.POLICY_EVENTS),
                        key=f"story-{i}".encode(),
                        value=json.dumps(event(i)).encode(),
                    )
                p.flush()
                if stop.wait(every_s):
                    return
        finally:
            p.close()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def dead_letters(s: Settings) -> list[dict[str, Any]]:
    return [
        json.loads(v)
        for v in read_topic(s, t.DEAD_LETTER, idle_ms=1500)
        if v is not None and json.loads(v)["stage"] in ("deliver", "match-subscriptions")
    ]


def check_once(receivers: list[Receiver], expected: set[str]) -> None:
    for r in receivers:
        assert r.ids() == expected, (len(r.ids()), len(expected))
        kept = r.deduped()
        assert sorted(kept) == sorted(expected), "a receiver deduping by key saw an item twice"
        by_key: dict[str, set[tuple[str, ...]]] = {}
        for key, ids in r.got:
            by_key.setdefault(key, set()).add(ids)
        assert all(len(v) == 1 for v in by_key.values()), "one key, different items"


def test_kill9_worker_loses_no_notification(
    kafka_settings: Settings, tmp_path: Path, receivers: list[Receiver]
) -> None:
    n_events, kills = 500, 3
    s = setup(kafka_settings, receivers)
    w = Worker(s, tmp_path / "worker.log")
    expected = {f"ev-{i}" for i in range(n_events)}
    stop = threading.Event()
    w.start()
    try:
        # The first chunk shows the worker is consuming; the rest flows during the kills.
        produce(s, range(10), stop, every_s=0).join(timeout=60)
        wait_for(lambda: all(len(r.ids()) >= 10 for r in receivers), timeout=300)
        producer = produce(s, range(10, n_events), stop, every_s=1.0)  # ~50 s of input
        for k in range(1, kills + 1):
            # Kill once the stream is under way: a share of the items has arrived somewhere.
            def progressed(k: int = k) -> bool:
                return len(set().union(*(r.ids() for r in receivers))) >= k * n_events // 5

            wait_for(progressed, timeout=300)
            w.kill9()
            w.start()
        producer.join(timeout=120)
        assert not producer.is_alive()

        def all_arrived() -> bool:
            return all(r.ids() >= expected for r in receivers)

        wait_for(all_arrived, timeout=600, interval=1.0)
        assert w.alive(), w.tail()
    finally:
        stop.set()
        w.stop()
    check_once(receivers, expected)
    assert any(len(ids) > 1 for r in receivers for _, ids in r.got), "no digest formed"
    assert receivers[2].failed > 0
    assert dead_letters(s) == []
    print(
        "\nrequests per receiver:",
        [len(r.got) for r in receivers],
        "duplicates:",
        [len(r.got) - len({k for k, _ in r.got}) for r in receivers],
        "500s:",
        receivers[2].failed,
    )


def test_es_outage_while_matching_loses_nothing(
    kafka_settings: Settings, tmp_path: Path, receivers: list[Receiver]
) -> None:
    from deploy.stack import Stack

    n_before, n_during, outage_s = 100, 100, 30.0
    s = setup(kafka_settings, receivers[:1])
    r = receivers[0]
    w = Worker(s, tmp_path / "worker.log")
    expected = {f"ev-{i}" for i in range(n_before + n_during)}
    stop = threading.Event()
    w.start()
    stack = Stack(s)
    try:
        produce(s, range(n_before), stop, every_s=0.1).join(timeout=60)
        wait_for(lambda: r.ids() >= {f"ev-{i}" for i in range(n_before)}, timeout=300)
        es_pid = int(stack.es.pid_file.read_text())
        stack.stop("elasticsearch")
        try:
            wait_for(lambda: not running(es_pid), timeout=60)
            assert es_down(s)
            # Events arrive while Elasticsearch is gone: the matcher must wait them out.
            produce(s, range(n_before, n_before + n_during), stop, every_s=0.5)
            time.sleep(outage_s)  # the fault itself: how long Elasticsearch stays down
            assert w.alive(), w.tail()
            assert not r.ids() & (expected - {f"ev-{i}" for i in range(n_before)})
        finally:
            stack.up()
        wait_for(lambda: r.ids() >= expected, timeout=300, interval=1.0)
        assert w.alive(), w.tail()
    finally:
        stop.set()
        w.stop()
    check_once([r], expected)
    assert dead_letters(s) == []
    assert "elasticsearch unavailable" in w.tail(200_000)
