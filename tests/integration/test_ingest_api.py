"""``POST /api/ingest/news`` validates, produces to the real broker, and answers after the ack."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer

from cpwatch import topics as t
from cpwatch.records import NewsArticle
from cpwatch.settings import Settings

pytestmark = pytest.mark.integration

TOKEN = "ingest-test-token"  # noqa: S105 - a test fixture, not a secret


def _client(settings: Settings) -> TestClient:
    from api.routes_subscriptions import subscription_settings
    from api.server import create_app

    app = create_app()
    app.dependency_overrides[subscription_settings] = lambda: settings
    return TestClient(app)


def test_pushed_articles_land_on_the_news_topic(kafka_settings: Settings) -> None:
    from pydantic import SecretStr

    s = kafka_settings.model_copy(update={"api_tokens": SecretStr(TOKEN)})
    client = _client(s)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    articles = [
        {
            "title": "Senate panel backs stablecoin bill",
            "text": "<p>The committee voted 12-9.</p>",
            "source_url": "https://news.example.org/a?utm_source=x",
            "published": "2025-06-01",
        },
        {"id": "given-id", "title": "Central bank pilots a digital currency", "text": "Pilot."},
    ]
    assert client.post("/api/ingest/news", json=articles[0]).status_code == 401
    bad = client.post("/api/ingest/news", json=[articles[0], {"text": "no title"}], headers=auth)
    assert (
        bad.status_code == 422
        and "article 1" in bad.json()["detail"]
        and "title" in bad.json()["detail"]
    )

    ok = client.post("/api/ingest/news", json=articles, headers=auth)
    assert ok.status_code == 202, ok.text
    ids = ok.json()["ids"]
    assert ok.json()["accepted"] == 2 and ids[1] == "given-id"

    consumer = KafkaConsumer(
        s.topic(t.NEWS),
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        **s.kafka_client_kwargs(),
    )
    got = {m.key.decode(): NewsArticle.parse(m.value) for m in consumer}
    consumer.close()
    assert set(got) == set(ids), "the rejected request produced nothing"
    first = got[ids[0]]
    assert first.url == "https://news.example.org/a" and first.text == "The committee voted 12-9."
    assert first.published is not None and first.published.isoformat().startswith("2025-06-01")
