"""API hardening on the real engines: channel secrets sealed in Elasticsearch yet used for
signing, an oversized ingest record sends nothing to Kafka, one events search per period
for any number of streams, and key rotation of stored subscriptions."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from aiohttp import web
from elasticsearch import Elasticsearch
from fastapi.testclient import TestClient
from kafka import KafkaConsumer
from pydantic import SecretStr

from api import routes_dashboard, routes_ingest
from app.secrets_cli import rotate_all
from cpwatch import secretbox
from cpwatch import topics as t
from cpwatch.settings import Settings
from notify.subscriptions import Subscription
from notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from producers.kafka import Producer
from tests.conftest import free_port, wait_for
from tests.receiver import HttpReceiver

pytestmark = pytest.mark.integration

TOKEN = "hardening-integration-token-1"
HOOK_SECRET = "integration-hook-secret-0123456789"
KEY_OLD, KEY_NEW = secretbox.new_key(), secretbox.new_key()


@dataclass
class SignedReceiver(HttpReceiver):
    bodies: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append((dict(request.headers), await request.read()))
        return web.Response(status=200)


def _app(settings: Settings) -> Any:
    from api.routes_subscriptions import subscription_settings
    from api.server import create_app

    app = create_app()
    app.dependency_overrides[subscription_settings] = lambda: settings
    return app


@pytest.fixture
def es_settings(kafka_settings: Settings) -> Iterator[tuple[Elasticsearch, Settings]]:
    from sinks.indices import ensure_indices

    s = kafka_settings.model_copy(
        update={
            "api_tokens": SecretStr(TOKEN),
            "secret_key": SecretStr(KEY_OLD),
            "delivery_ssrf_allowlist": "127.0.0.1",
        }
    )
    es = Elasticsearch(**s.es_client_kwargs())  # type: ignore[arg-type]
    ensure_indices(es, s)
    yield es, s
    es.close()


def test_secrets_are_sealed_in_elasticsearch_and_still_sign(
    es_settings: tuple[Elasticsearch, Settings],
) -> None:
    es, s = es_settings
    receiver = SignedReceiver()
    receiver.start()
    try:
        client = TestClient(_app(s))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        hook = {"type": "webhook", "url": receiver.url("/hook?k=url-cred"), "secret": HOOK_SECRET}
        created = client.post(
            "/api/subscriptions", headers=auth, json={"name": "h", "channel": hook}
        )
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        raw = es.get(index=s.index("subscriptions"), id=sid)["_source"]
        text = json.dumps(raw)
        assert HOOK_SECRET not in text and "url-cred" not in text and "/hook" not in text
        assert raw["channel"]["secret"]["enc"] == "v1" and raw["channel"]["url"]["enc"] == "v1"

        sent = client.post(f"/api/subscriptions/{sid}/test", headers=auth)
        assert sent.status_code == 200 and sent.json()["delivered"], sent.text
        headers, body = receiver.bodies[-1]
        ts = int(headers[TIMESTAMP_HEADER])
        assert verify_signature(HOOK_SECRET, ts, body, headers[SIGNATURE_HEADER], tolerance_s=600)

        # Rotation: the new key plus the old one for reading; afterwards the new key alone.
        rotated_box = secretbox.from_settings(
            s.model_copy(
                update={"secret_key": SecretStr(KEY_NEW), "secret_key_old": SecretStr(KEY_OLD)}
            )
        )
        assert rotate_all(es, s, rotated_box) == (1, 0)
        after = es.get(index=s.index("subscriptions"), id=sid)["_source"]
        new_only = secretbox.from_settings(s.model_copy(update={"secret_key": SecretStr(KEY_NEW)}))
        assert after["channel"]["secret"]["kid"] == new_only.current_kid
        sub = Subscription.from_es_doc(after, new_only)
        assert sub.channel.secret.get_secret_value() == HOOK_SECRET  # type: ignore[union-attr]
    finally:
        receiver.stop()


def test_an_oversized_record_fails_the_whole_request_and_nothing_is_sent(
    kafka_settings: Settings,
) -> None:
    s = kafka_settings.model_copy(update={"api_tokens": SecretStr(TOKEN)})
    limit = 50_000  # a producer with a small max_request_size; the route reads its limit
    key = s.kafka_bootstrap + "|" + s.topic_prefix
    routes_ingest._producers[key] = Producer(s, client_id="t-ingest", max_request_size=limit)
    try:
        client = TestClient(_app(s))
        small = {"title": "Small article", "text": "fits"}
        big = {"title": "Big article", "text": "word " * 20_000}
        resp = client.post(
            "/api/ingest/news", headers={"Authorization": f"Bearer {TOKEN}"}, json=[small, big]
        )
        assert resp.status_code == 413, resp.text
        detail = resp.json()["detail"]
        assert "article 1" in detail and "text" in detail and str(limit) in detail
        ok = client.post(
            "/api/ingest/news", headers={"Authorization": f"Bearer {TOKEN}"}, json=[small]
        )
        assert ok.status_code == 202, ok.text
    finally:
        routes_ingest._producers.pop(key).close()
    consumer = KafkaConsumer(
        s.topic(t.NEWS),
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        **s.kafka_client_kwargs(),
    )
    titles = [json.loads(m.value)["title"] for m in consumer]
    consumer.close()
    assert titles == ["Small article"], "only the accepted request's article reached Kafka"


@pytest.fixture
def api_server(es_settings: tuple[Elasticsearch, Settings]) -> Iterator[tuple[int, Settings]]:
    _, s = es_settings
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(_app(s), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, timeout=20, interval=0.05)
    yield port, s
    srv.should_exit = True
    thread.join(10)


def test_many_event_streams_cost_one_search_per_period(
    api_server: tuple[int, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, s = api_server
    polls: list[tuple[float, str | None]] = []
    real = routes_dashboard._new_events

    def counted(es: Any, settings: Settings, since: str | None, skip: set[str]) -> Any:
        polls.append((time.monotonic(), since))
        return real(es, settings, since, skip)

    monkeypatch.setattr(routes_dashboard, "_new_events", counted)
    url = f"http://127.0.0.1:{port}/api/events/stream"
    n = 6
    with httpx.Client(timeout=10) as http:
        streams = [http.stream("GET", url) for _ in range(n)]
        responses = [cm.__enter__() for cm in streams]
        lines = [r.iter_lines() for r in responses]  # kept: a dropped iterator disconnects
        assert all(next(it).startswith("retry:") for it in lines)
        start = time.monotonic()
        wait_for(lambda: time.monotonic() - start > 4 * routes_dashboard.POLL_S, timeout=10)
        window = [p for p in polls if p[0] >= start]
        for cm in streams:
            cm.__exit__(None, None, None)
    periods = 4
    # One per period (plus one of slack for timing), not one per stream per period (24).
    assert periods - 1 <= len(window) <= periods + 1, (len(window), n)
