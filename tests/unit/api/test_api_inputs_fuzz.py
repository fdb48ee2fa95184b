"""Hypothesis over every API input: subscription bodies (and the channels in them), silence
times, list sizes, search parameters and ingest bodies. Whatever arrives, the answer is a
success or a 4xx whose message names the field; never a 500, never an echoed secret."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import routes_ingest, routes_subscriptions
from api.auth import api_settings
from api.routes_search import es_client as search_es
from api.routes_search import search_settings
from api.routes_subscriptions import es_client
from api.server import create_app
from cpwatch.settings import Settings
from tests.unit.api.test_hardening import EmptyEs

TOKEN = "fuzz-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET_MARK = "SeCrEt-MaRk-"
SETTINGS = Settings(api_tokens=TOKEN, api_rate_search=0, api_rate_ingest=0)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, key: str, value: bytes) -> None:
        self.sent.append((key, value))

    def flush(self) -> None:
        return None


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app()
    es = EmptyEs()
    for dep in (api_settings, search_settings):
        app.dependency_overrides[dep] = lambda: SETTINGS
    app.dependency_overrides[es_client] = lambda: es
    app.dependency_overrides[search_es] = lambda: es
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SSRF guard resolves names; here every host is taken as public (its own tests are in
    tests/unit/notify/test_ssrf.py), and Kafka is a list."""

    async def public(url: str, allowlist: Any) -> None:
        return None

    monkeypatch.setattr(routes_subscriptions, "check_url", public)
    monkeypatch.setattr(routes_ingest, "_producer", lambda _s: FakeProducer())


def _text(resp: Any) -> str:
    return resp.text if isinstance(resp.text, str) else ""


def _named(detail: Any, names: set[str]) -> bool:
    """The 4xx names a field: a loc or the message mentions one of ``names``."""
    text = json.dumps(detail)
    return any(n in text for n in names)


FLOATS = st.floats(allow_nan=False, allow_infinity=False)  # JSON has neither
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | FLOATS | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["", " ", "\x00", "\u202e", "a" * 5000, "-1", "1e309", "NaN", "@", "🙂" * 50]),
)
URLS = st.one_of(
    st.sampled_from(
        [
            "https://93.184.215.14/h",
            "http://example.org/x?y=1",
            "ftp://x",
            "https://",
            "https://[::1]:99999/",
            "javascript:alert(1)",
            "https://a..b/",
        ]
    ),
    HOSTILE_TEXT,
)
SECRETS = st.one_of(
    st.just(SECRET_MARK + "x" * 20), st.text(max_size=40).map(lambda t: SECRET_MARK + t)
)
CHANNELS = st.one_of(
    st.fixed_dictionaries({"type": st.just("webhook"), "url": URLS, "secret": SECRETS}),
    st.fixed_dictionaries({"type": st.just("email"), "address": HOSTILE_TEXT}),
    st.fixed_dictionaries({"type": st.sampled_from(["slack", "teams", "discord"]), "url": URLS}),
    st.fixed_dictionaries(
        {"type": st.just("pagerduty"), "routing_key": SECRETS},
        optional={"severity": HOSTILE_TEXT, "url": URLS},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("telegram"),
            "bot_token": st.one_of(SECRETS, st.just("123456:" + "A" * 30)),
            "chat_id": st.one_of(st.integers(), HOSTILE_TEXT),
        },
        optional={"api_base": URLS},
    ),
    st.dictionaries(st.text(max_size=8), JSONISH, max_size=3),
)
FIELDS = {
    "id",
    "name",
    "query",
    "filters",
    "channel",
    "realert_window",
    "silence_until",
    "group_wait",
    "group_interval",
    "group_by",
    "created_at",
    "body",
    "type",
    "url",
    "secret",
    "address",
    "routing_key",
    "bot_token",
    "chat_id",
    "api_base",
    "severity",
    "categories",
    "countries",
    "orgs",
    "holders",
    "rule_types",
    "min_severity",
}
BODIES = st.fixed_dictionaries(
    {"name": HOSTILE_TEXT, "channel": CHANNELS},
    optional={
        "query": st.one_of(
            st.none(), HOSTILE_TEXT, st.sampled_from(['"open', "a AND (", "*", "OR"])
        ),
        "filters": st.one_of(
            JSONISH,
            st.fixed_dictionaries(
                {},
                optional={
                    "countries": st.lists(HOSTILE_TEXT, max_size=3),
                    "categories": st.lists(HOSTILE_TEXT, max_size=3),
                    "min_severity": st.one_of(FLOATS, HOSTILE_TEXT),
                    "rule_types": st.lists(HOSTILE_TEXT, max_size=2),
                },
            ),
        ),
        "realert_window": st.one_of(
            HOSTILE_TEXT, st.integers(), st.sampled_from(["1h", "0s", "-5m"])
        ),
        "group_wait": st.one_of(HOSTILE_TEXT, st.integers()),
        "group_interval": st.one_of(HOSTILE_TEXT, st.integers()),
        "group_by": st.one_of(JSONISH, st.lists(HOSTILE_TEXT, max_size=3)),
        "silence_until": st.one_of(HOSTILE_TEXT, st.just("2030-01-01T00:00:00Z")),
        "id": HOSTILE_TEXT,
        "extra": JSONISH,
    },
)
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=st.one_of(BODIES, JSONISH))
def test_subscription_bodies_never_500_nor_echo_a_secret(client: TestClient, body: Any) -> None:
    for method, path in (("POST", "/api/subscriptions"), ("PUT", "/api/subscriptions/nope")):
        resp = client.request(method, path, headers=AUTH, json=body)
        assert resp.status_code < 500, (resp.status_code, resp.text)
        assert SECRET_MARK not in _text(resp), "a secret came back in the answer"
        if resp.status_code == 422:
            # A known field, or the unknown key the body itself carried ("extra inputs").
            sent = {k for k in body if k} if isinstance(body, dict) else set()
            assert _named(resp.json()["detail"], FIELDS | {"body"} | sent), resp.text
        if resp.status_code >= 400 and resp.status_code != 422:
            assert resp.status_code in (404,) and method == "PUT", resp.text


@FUZZ
@given(
    until=HOSTILE_TEXT,
    size=st.one_of(st.integers(), HOSTILE_TEXT),
    offset=st.one_of(st.integers(), HOSTILE_TEXT),
)
def test_query_parameters_of_subscription_routes(
    client: TestClient, until: str, size: Any, offset: Any
) -> None:
    resp = client.post("/api/subscriptions/x/silence", headers=AUTH, params={"until": until})
    assert resp.status_code in (400, 404, 422), resp.text
    if resp.status_code == 400:
        assert "until" in resp.json()["detail"]
    listed = client.get("/api/subscriptions", headers=AUTH, params={"size": size, "offset": offset})
    assert listed.status_code in (200, 422), listed.text
    if listed.status_code == 422:
        assert _named(listed.json()["detail"], {"size", "offset"})
    alerts = client.get("/api/alerts", headers=AUTH, params={"size": size, "holder": until})
    assert alerts.status_code in (200, 422), alerts.text


SEARCH_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "q": st.one_of(
            HOSTILE_TEXT, st.sampled_from(['"', "((", "a OR", "NOT", "*a", "a~2", "a:b"])
        ),
        "category": st.lists(HOSTILE_TEXT, max_size=2),
        "country": st.lists(HOSTILE_TEXT, max_size=2),
        "org": st.lists(HOSTILE_TEXT, max_size=2),
        "since": st.one_of(HOSTILE_TEXT, st.just("2025-01-01")),
        "until": HOSTILE_TEXT,
        "index": st.one_of(HOSTILE_TEXT, st.sampled_from(["events", "articles", "alerts"])),
        "size": st.one_of(st.integers(), HOSTILE_TEXT),
        "after": HOSTILE_TEXT,
    },
)


@FUZZ
@given(params=SEARCH_PARAMS)
def test_search_parameters_are_200_or_a_400_naming_the_parameter(
    client: TestClient, params: dict[str, Any]
) -> None:
    resp = client.get("/api/search", params=params)
    assert resp.status_code in (200, 400), (resp.status_code, resp.text)
    if resp.status_code == 400:
        assert resp.json().get("param") in set(params) | {"q"}, resp.text


ARTICLE = st.fixed_dictionaries(
    {},
    optional={
        "id": HOSTILE_TEXT,
        "title": HOSTILE_TEXT,
        "text": HOSTILE_TEXT,
        "source_url": URLS,
        "url": URLS,
        "published": st.one_of(HOSTILE_TEXT, st.integers(), st.just("2025-06-01")),
        "source": HOSTILE_TEXT,
        "lang": HOSTILE_TEXT,
        "extra": JSONISH,
    },
)


@FUZZ
@given(body=st.one_of(ARTICLE, st.lists(ARTICLE, max_size=4), JSONISH))
def test_ingest_bodies_are_202_or_a_4xx_naming_the_article(client: TestClient, body: Any) -> None:
    resp = client.post("/api/ingest/news", headers=AUTH, json=body)
    assert resp.status_code in (202, 413, 422), (resp.status_code, resp.text)
    if resp.status_code == 422:
        detail = json.dumps(resp.json()["detail"])
        assert "article" in detail or "body" in detail, detail
