"""The worker's committed offsets moved past alerts it never routed (on ``alerts``) and past
alerts it never tracked (on the tracker's internal input): every one still becomes a firing
notification. What Faust's gap handling can leave after a restart or a rebalance: it commits
past records it never delivered (runtime/positions.py, runtime/nudge.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaProducer
from pydantic import SecretStr

from cpwatch import topics as t
from cpwatch.internal_topics import LIFECYCLE_INPUT, internal_topic
from cpwatch.records import dumps
from cpwatch.settings import Settings
from streams.alerts import Alert
from tests.api_client import AUTH, TOKEN, api_client, subscription
from tests.conftest import free_port, wait_for
from tests.faults.conftest import (
    Worker,
    commit_to_end,
    expected_alerts,
    read_topic,
    ticks,
    with_rules,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SEED = 20261204
SKIPPED_ROUTED, SKIPPED_TRACKED = 6, 6


def lifecycle_input(s: Settings) -> str:
    return internal_topic(s, LIFECYCLE_INPUT)


def fired(s: Settings) -> set[str]:
    """Fingerprints of the alerts notified as firing, from the deliveries topic."""
    out = set()
    for v in read_topic(s, t.DELIVERIES, idle_ms=1500):
        for item in json.loads(v or b"{}").get("items", []):
            if item.get("type") == "alert" and item.get("kind") == "firing":
                out.add(item["alert"]["fingerprint"])
    return out


def write(s: Settings, topic: str, alerts: list[Alert], partition: int | None = None) -> None:
    producer = KafkaProducer(**s.kafka_client_kwargs())
    try:
        for a in alerts:
            value = dumps(a.to_message())
            producer.send(topic, key=a.holder.encode(), value=value, partition=partition)
        producer.flush()
    finally:
        producer.close()


def test_alerts_committed_past_are_still_notified(
    kafka_settings: Settings, tmp_path: Path, restartable_worker: Worker
) -> None:
    s = with_rules(kafka_settings, tmp_path).model_copy(
        update={
            "delivery_ssrf_allowlist": "127.0.0.1",
            "delivery_max_attempts": 1,
            "subscriptions_refresh_s": 1.0,
            "api_tokens": SecretStr(TOKEN),
        }
    )
    w = restartable_worker
    w.settings = s
    # One holder's alerts: they share an alerts partition (alerts is a contract topic: it is
    # never nudged, its consumer is sought back).
    every = expected_alerts(s, ticks(4_000, SEED))
    holder = max({a.holder for a in every}, key=lambda h: sum(a.holder == h for a in every))
    mine = [a for a in every if a.holder == holder]
    need = 2 + SKIPPED_ROUTED + SKIPPED_TRACKED
    assert len(mine) >= need, f"{len(mine)} alerts of {holder}"
    first, routed, tracked, last = (
        mine[:1],
        mine[1 : 1 + SKIPPED_ROUTED],
        mine[1 + SKIPPED_ROUTED : need - 1],
        mine[need - 1 : need],
    )

    from sinks.indices import ensure_indices

    es = Elasticsearch(**s.es_client_kwargs())
    ensure_indices(es, s)
    es.close()
    dead = {"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/x", "secret": "x" * 32}
    body = subscription(
        "all alerts", dead, None, rule_types=["level", "below_cost", "pct_move", "drawdown"]
    )
    resp = api_client(s).post("/api/subscriptions", json=body, headers=AUTH)
    assert resp.status_code == 201, resp.text

    w.start()
    write(s, s.topic(t.ALERTS), first)
    wait_for(lambda: first[0].fingerprint in fired(s), timeout=240, interval=1.0, context=w.tail)
    w.stop()  # graceful: the group is left empty, so its offsets can be altered

    write(s, s.topic(t.ALERTS), routed)
    commit_to_end(s, s.topic(t.ALERTS))
    write(s, lifecycle_input(s), tracked, partition=0)
    commit_to_end(s, lifecycle_input(s))

    # Nothing new arrives: both inputs stand still behind their ends. The tracker's (internal)
    # is nudged; alerts (a contract topic) is sought back to route-alerts' saved position.
    w.start()
    want = {a.fingerprint for a in tracked + routed}
    wait_for(lambda: want <= fired(s), timeout=240, interval=2.0, context=w.tail)
    log = w.log_path.read_text(errors="replace").split("===== start 1")[1]
    assert re.search(r"alert-lifecycle: .* stands at \d+ of \d+; nudged", log), w.tail()
    assert re.search(r"route-alerts: .* stands at \d+ of \d+; sought back", log), w.tail()
    # The path carries on: a later alert on the same partition fires too.
    write(s, s.topic(t.ALERTS), last)
    want |= {a.fingerprint for a in last}
    wait_for(lambda: want <= fired(s), timeout=240, interval=2.0, context=w.tail)
