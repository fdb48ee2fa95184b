"""Subscriptions end to end on the real engines: a Faust worker, Kafka, Elasticsearch, a real
HTTP receiver (aiohttp) and a real SMTP server (aiosmtpd), all on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, KafkaProducer
from pydantic import SecretStr

from cpwatch import topics as t
from cpwatch.internal_topics import STORY_INPUT, internal_topic
from cpwatch.records import HoldingUpdate, NewsArticle, PriceTick
from cpwatch.settings import Settings
from notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from tests.api_client import AUTH, SECRET, TOKEN, api_client, subscription, webhook
from tests.conftest import free_port, wait_for
from tests.integration.test_news_stream import SEED_TEXT
from tests.receiver import RecordingReceiver
from tests.worker import start_worker, stop_worker

pytestmark = pytest.mark.integration

RULES = """
rules:
  - {id: sv-level, holder: SV, type: level, threshold_usd: 540000000, hysteresis: 0.0}
"""


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    r = RecordingReceiver(failures={"/flaky": 3})  # ``/flaky`` answers 500 three times, then 200
    r.start()
    yield r
    r.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    yield box, port
    ctl.stop()


def _records(settings: Settings, full_name: str) -> list[Any]:
    """Every record of a topic (its full name), from the start, until it is idle for 1.5 s."""
    c = KafkaConsumer(
        full_name,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1500,
        **settings.kafka_client_kwargs(),
    )
    out = list(c)
    c.close()
    return out


def _consume(settings: Settings, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in _records(settings, settings.topic(topic))]


def _trace(settings: Settings, marker: str, log: Path) -> str:
    """Where ``marker`` (an article id) got to on its way to a delivery, and the worker log's
    tail: what a failure of this test must say to be diagnosed from the CI output alone."""
    topics = {
        "news": settings.topic(t.NEWS),
        "articles": settings.topic(t.ARTICLES),
        "story-input": internal_topic(settings, STORY_INPUT),
        "policy-events": settings.topic(t.POLICY_EVENTS),
        "deliveries": settings.topic(t.DELIVERIES),
        "dead-letter": settings.topic(t.DEAD_LETTER),
    }
    lines = []
    for name, topic in topics.items():
        try:
            records = _records(settings, topic)
            found = [
                f"p{m.partition}@{m.offset}" for m in records if marker.encode() in (m.value or b"")
            ]
            lines.append(f"{name}: {marker} at {found or 'nowhere'}")
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the failure
            lines.append(f"{name}: not read ({exc!r})")
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no worker log)"
    return "\n".join(lines) + "\nworker log tail:\n" + tail


def test_subscriptions_end_to_end(
    kafka_settings: Settings, tmp_path: Path, receiver: RecordingReceiver, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, smtp_port = smtp
    (tmp_path / "rules.yaml").write_text(RULES)
    dead_port = free_port()  # nothing listens: connection refused on every attempt
    s = kafka_settings.model_copy(
        update={
            "rules_file": tmp_path / "rules.yaml",
            "delivery_ssrf_allowlist": "127.0.0.1",
            "delivery_max_attempts": 4,
            "delivery_backoff_base_s": 0.05,
            "delivery_backoff_cap_s": 0.2,
            "smtp_port": smtp_port,
            "smtp_starttls": False,
            "subscriptions_refresh_s": 1.0,
            "api_tokens": SecretStr(TOKEN),
        }
    )
    from sinks.indices import ensure_indices

    es = Elasticsearch(**s.es_client_kwargs())
    ensure_indices(es, s)

    client = api_client(s)
    ids: dict[str, str] = {}
    for name, body in {
        "main": subscription(
            "imf mining pk", webhook(receiver, "/main"), "IMF AND mining", countries=["PK"]
        ),
        "nomatch": subscription("ukraine etf", webhook(receiver, "/nomatch"), "Ukraine AND ETF"),
        "wrong-country": subscription(
            "imf mining br", webhook(receiver, "/br"), "IMF AND mining", countries=["BR"]
        ),
        "email": subscription(
            "imf by mail", {"type": "email", "address": "ops@example.org"}, "IMF"
        ),
        "flaky": subscription("imf flaky", webhook(receiver, "/flaky"), "IMF AND mining"),
        "dead": subscription(
            "imf dead",
            {"type": "webhook", "url": f"http://127.0.0.1:{dead_port}/x", "secret": SECRET},
            "IMF AND mining",
        ),
        "treasury": subscription(
            "sv level", webhook(receiver, "/treasury"), None, holders=["SV"], rule_types=["level"]
        ),
    }.items():
        resp = client.post("/api/subscriptions", json=body, headers=AUTH)
        assert resp.status_code == 201, resp.text
        assert resp.json()["channel"].get("secret") in (None, "********")
        ids[name] = resp.json()["id"]
    assert client.get("/api/subscriptions").status_code == 401  # subscriber data is private
    listed = client.get("/api/subscriptions", headers=AUTH).json()
    assert listed["total"] == 7 and SECRET not in json.dumps(listed)
    # Test-fire goes straight to the channel.
    fired = client.post(f"/api/subscriptions/{ids['main']}/test", headers=AUTH).json()
    assert fired["delivered"], fired
    wait_for(lambda: receiver.hits("/main"), timeout=10)
    receiver.got.clear()

    worker = start_worker(s, tmp_path / "worker.log")
    producer = KafkaProducer(**s.kafka_client_kwargs())
    try:
        # Warm-up: a non-event article; once it is indexed, the worker is consuming.
        warm = NewsArticle(
            id="warm-1",
            source="wire-a",
            title="Bitcoin slips below $90,000",
            text="Bitcoin fell 3% on Tuesday as traders booked profits.",
            published="2025-05-28T09:00:00Z",
        )
        producer.send(s.topic(t.NEWS), key=warm.id.encode(), value=warm.to_bytes())
        producer.flush()

        def warmed() -> bool:
            es.indices.refresh(index=s.index("articles"))
            return es.count(index=s.index("articles"))["count"] >= 1

        wait_for(warmed, timeout=120)

        def valued() -> bool:
            es.indices.refresh(index=s.index("treasury-valuations"), ignore_unavailable=True)
            n = es.count(index=s.index("treasury-valuations"), ignore_unavailable=True)
            return n["count"] >= 1

        seed = NewsArticle(
            id="seed-a",
            source="wire-a",
            title="Pakistan and El Salvador sign bitcoin letter of intent as IMF blocks mining power plan",
            text=SEED_TEXT,
            published="2025-05-28T10:00:00Z",
        )
        produced_at = time.time()
        producer.send(s.topic(t.NEWS), key=seed.id.encode(), value=seed.to_bytes())
        producer.flush()

        # Treasury: SV holds 6,000 BTC; the level is $540M (= $90,000/BTC).
        holding = HoldingUpdate(
            holder="SV",
            kind="state",
            country="SV",
            btc=6000,
            as_of=datetime(2024, 1, 1, tzinfo=UTC),
        )
        producer.send(s.topic(t.HOLDINGS), key=b"SV", value=holding.to_bytes())
        producer.flush()
        start = datetime(2024, 1, 2, tzinfo=UTC)
        for i, price in enumerate([100_000, 85_000, 100_000]):
            tick = PriceTick(
                venue="replay",
                symbol="BTC-USD",
                price=price,
                ts=start + timedelta(minutes=i),
                seq=i,
            )
            producer.send(s.topic(t.PRICE_TICKS), key=tick.key.encode(), value=tick.to_bytes())
            producer.flush()
            if i == 0:
                # The news warm-up says nothing of the treasury path (its own consumer group,
                # the treasury agent, two internal topics): on a loaded box that path can
                # still be starting. The first tick (above the level: no alert) is its
                # warm-up: once valued, the crossings below take well under a second.
                wait_for(valued, timeout=180)

        main = wait_for(
            lambda: receiver.hits("/main"),
            timeout=90,
            context=lambda: _trace(s, "seed-a", tmp_path / "worker.log"),
        )
        first = main[0]
        latency = first.at - produced_at
        print(f"\nproduction -> webhook receipt latency: {latency * 1000:.0f} ms")
        (tmp_path / "latency.txt").write_text(f"{latency:.3f}\n")
        assert verify_signature(
            SECRET, first.headers[TIMESTAMP_HEADER], first.body, first.headers[SIGNATURE_HEADER]
        )
        msg = first.json()
        assert msg["subscription"] == ids["main"]
        assert [i["type"] for i in msg["items"]] == ["event"]
        assert msg["items"][0]["id"] == "seed-a" and "PK" in msg["items"][0]["countries"]
        assert first.headers["Idempotency-Key"] == msg["delivery_id"]

        wait_for(lambda: mailbox.messages, timeout=30)
        rcpt, content = mailbox.messages[0]
        assert rcpt == ["ops@example.org"] and b"IMF blocks mining" in content

        wait_for(lambda: receiver.hits("/flaky"), timeout=30)

        def treasury_done() -> bool:
            items = [i for r in receiver.hits("/treasury") for i in r.json()["items"]]
            return any(i["kind"] == "resolved" for i in items)

        wait_for(treasury_done, timeout=180)

        def dead_lettered() -> list[dict[str, Any]]:
            return [
                d
                for d in _consume(s, t.DEAD_LETTER)
                if d["stage"] == "deliver" and ids["dead"] in d["payload"]
            ]

        dead = wait_for(dead_lettered, timeout=30)
        assert "4 attempt(s)" in dead[0]["reason"], dead[0]["reason"]

        time.sleep(4)  # anything duplicated or misrouted would arrive by now
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        assert receiver.hits("/nomatch") == [] and receiver.hits("/br") == []
        assert len(receiver.hits("/main")) == 1
        assert len(mailbox.messages) == 1
        flaky = receiver.hits("/flaky")
        assert len(flaky) == 1 and receiver.tries["/flaky"] == 4
        items = [i for r in receiver.hits("/treasury") for i in r.json()["items"]]
        for r in receiver.hits("/treasury"):
            assert verify_signature(
                SECRET, r.headers[TIMESTAMP_HEADER], r.body, r.headers[SIGNATURE_HEADER]
            )
        assert all(i["type"] == "alert" for i in items)
        down = [i for i in items if i["kind"] == "firing" and i["alert"]["direction"] == "down"]
        resolved = [i for i in items if i["kind"] == "resolved"]
        assert len(down) == 1, items
        assert len(resolved) == 1 and resolved[0]["incident"] == down[0]["incident"], items

        def attempts() -> list[dict[str, Any]]:
            es.indices.refresh(index=s.index("delivery-attempts"))
            hits = es.search(
                index=s.index("delivery-attempts"),
                size=100,
                query={"term": {"subscription": ids["flaky"]}},
                sort=[{"attempt": "asc"}],
            )["hits"]["hits"]
            docs = [h["_source"] for h in hits]
            return docs if len(docs) >= 4 else []

        tries = wait_for(attempts, timeout=20)
        assert [d["status"] for d in tries] == [500, 500, 500, 200]
        assert [d["ok"] for d in tries] == [False, False, False, True]
        assert all(d["latency_ms"] >= 0 for d in tries)

        es.indices.refresh(index=s.index("delivery-attempts"))
        dead_tries = es.count(
            index=s.index("delivery-attempts"), query={"term": {"subscription": ids["dead"]}}
        )["count"]
        assert dead_tries == 4

        # Alerts API: list and ack.
        assert client.get("/api/alerts").status_code == 401
        alerts = wait_for(
            lambda: client.get("/api/alerts", headers=AUTH).json()["alerts"], timeout=30
        )
        fp = alerts[0]["fingerprint"]
        assert client.post(f"/api/alerts/{fp}/ack").status_code == 401
        acked = client.post(f"/api/alerts/{fp}/ack", headers=AUTH)
        assert acked.status_code == 200 and acked.json()["acked_at"]
        assert acked.json()["acked_by"] == "env-1"  # the token's label, nothing of the token
    finally:
        producer.close()
        stop_worker(worker)
        es.close()


def test_api_auth_ssrf_and_crud(kafka_settings: Settings) -> None:
    s = kafka_settings.model_copy(update={"api_tokens": SecretStr(f"other,{TOKEN}")})
    from sinks.indices import ensure_indices

    es = Elasticsearch(**s.es_client_kwargs())
    ensure_indices(es, s, ["subscriptions", "alerts"])
    es.close()
    client = api_client(s)
    body = subscription(
        "pub", {"type": "webhook", "url": "https://93.184.215.14/hook", "secret": SECRET}, "IMF"
    )
    assert client.post("/api/subscriptions", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/api/subscriptions", json=body, headers=wrong).status_code == 401
    for url in (
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/hook",
        "http://127.0.0.1/hook",
    ):
        bad = {**body, "channel": {**body["channel"], "url": url}}
        resp = client.post("/api/subscriptions", json=bad, headers=AUTH)
        assert resp.status_code == 422, (url, resp.text)
        assert "refused" in resp.json()["detail"]
    slack = subscription("slack", {"type": "slack", "url": "http://169.254.169.254/services/x"})
    assert client.post("/api/subscriptions", json=slack, headers=AUTH).status_code == 422
    short = {**body, "channel": {**body["channel"], "secret": "short"}}
    assert client.post("/api/subscriptions", json=short, headers=AUTH).status_code == 422

    created = client.post("/api/subscriptions", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert SECRET not in created.text
    assert client.get(f"/api/subscriptions/{sid}").status_code == 401
    got = client.get(f"/api/subscriptions/{sid}", headers=AUTH).json()
    assert got["channel"]["secret"] == "********"
    assert got["channel"]["url"] == "https://93.184.215.14/***"  # the path may be a credential
    assert (
        client.put(f"/api/subscriptions/{sid}", json={**body, "query": "mining"}).status_code == 401
    )
    put = client.put(f"/api/subscriptions/{sid}", json={**body, "query": "mining"}, headers=AUTH)
    assert put.status_code == 200 and put.json()["query"] == "mining"
    sil = client.post(
        f"/api/subscriptions/{sid}/silence", params={"until": "2030-01-01T00:00:00Z"}, headers=AUTH
    )
    assert sil.status_code == 200 and sil.json()["silence_until"].startswith("2030-01-01")
    bad_until = client.post(
        f"/api/subscriptions/{sid}/silence", params={"until": "soon"}, headers=AUTH
    )
    assert bad_until.status_code == 400
    assert client.delete(f"/api/subscriptions/{sid}").status_code == 401
    assert client.delete(f"/api/subscriptions/{sid}", headers=AUTH).status_code == 204
    assert client.get(f"/api/subscriptions/{sid}", headers=AUTH).status_code == 404
    assert client.delete(f"/api/subscriptions/{sid}", headers=AUTH).status_code == 404
