"""API hardening without engines: Host allowlist (DNS rebinding), per-caller rate limits,
the cap on event streams, 422s that never echo a body, and no configured secret in any log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api import routes_subscriptions
from api.auth import api_settings
from api.hosts import allowed_hosts, host_name
from api.routes_search import es_client as search_es
from api.routes_search import search_settings
from api.routes_subscriptions import es_client
from api.server import create_app
from cpwatch import secretbox
from cpwatch.settings import Settings
from tests.unit.api.serve import serving
from tests.unit.api.test_auth import FakeEs

TOKEN = "hardening-token-5e1f0a9b8c7d"
HOOK_SECRET = "hook-secret-77aa88bb99cc00dd"
SECRET_KEY = secretbox.new_key()


class Resp(dict[str, Any]):
    @property
    def body(self) -> dict[str, Any]:
        return self


class EmptyEs(FakeEs):
    """Stores documents; every search answers no hits (what streams and search need)."""

    def search(self, **_: Any) -> Resp:  # type: ignore[override]
        return Resp(hits={"total": {"value": 0}, "hits": []})


def _app(settings: Settings, es: Any = None):  # noqa: ANN202 - a FastAPI app
    app = create_app()
    es = es or EmptyEs()
    app.dependency_overrides[api_settings] = lambda: settings
    app.dependency_overrides[search_settings] = lambda: settings
    app.dependency_overrides[es_client] = lambda: es
    app.dependency_overrides[search_es] = lambda: es
    return app


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ Host header


@pytest.mark.parametrize(
    ("header", "name"),
    [("LocalHost:8000", "localhost"), ("[::1]:8000", "[::1]"), ("127.0.0.1", "127.0.0.1")],
)
def test_host_name_drops_the_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_default_allowed_hosts_are_loopback_and_api_host() -> None:
    assert allowed_hosts(Settings(api_host="cpwatch.internal")) == (
        "localhost",
        "127.0.0.1",
        "[::1]",
        "cpwatch.internal",
    )


def test_foreign_host_header_is_a_400_and_loopback_names_pass() -> None:
    client = TestClient(_app(Settings()))
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8000", "localhost.evil.example", ""):
        resp = client.get("/healthz", headers={"Host": host})
        assert resp.status_code == 400, host
        assert "CPWATCH_API_ALLOWED_HOSTS" in resp.json()["detail"]
    post = client.post("/api/ingest/news", headers={"Host": "evil.example", **auth()}, json={})
    assert post.status_code == 400, "writes too, before anything else"


def test_allowed_hosts_setting_with_a_subdomain_pattern() -> None:
    client = TestClient(_app(Settings(api_allowed_hosts="*.corp.example, api.example")))
    ok = ("a.corp.example", "api.example:443")
    assert all(client.get("/healthz", headers={"Host": h}).status_code == 200 for h in ok)
    assert client.get("/healthz", headers={"Host": "localhost"}).status_code == 400
    assert client.get("/healthz", headers={"Host": "corp.example.evil"}).status_code == 400


# ------------------------------------------------------------------ rate limits


def test_search_over_its_rate_is_a_429_with_retry_after_per_caller() -> None:
    settings = Settings(api_rate_search=0.001, api_rate_search_burst=2, api_tokens=TOKEN)
    client = TestClient(_app(settings))
    codes = [client.get("/api/search", params={"q": "x"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = client.get("/api/search")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    # A valid token is its own caller; an unknown one falls back to the (empty) address bucket.
    assert client.get("/api/search", headers=auth()).status_code == 200
    assert client.get("/api/search", headers=auth("made-up-token")).status_code == 429


def test_ingest_rate_is_per_token(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(api_rate_ingest=0.001, api_rate_ingest_burst=1, api_tokens=TOKEN)
    client = TestClient(_app(settings))
    first = client.post("/api/ingest/news", headers=auth(), json=[])
    assert first.status_code == 422  # counted, then refused for its content
    second = client.post("/api/ingest/news", headers=auth(), json=[])
    assert second.status_code == 429 and second.headers["retry-after"]


# ------------------------------------------------------------------ event streams


@pytest.fixture
def sse_server() -> Iterator[int]:
    with serving(_app(Settings(api_max_sse_clients=2))) as port:
        yield port


def test_event_streams_past_the_cap_get_429_and_a_freed_slot_is_reused(sse_server: int) -> None:
    url = f"http://127.0.0.1:{sse_server}/api/events/stream"
    with httpx.Client(timeout=10) as http:
        streams = [http.stream("GET", url) for _ in range(2)]
        opened = [s.__enter__() for s in streams]
        lines = [resp.iter_lines() for resp in opened]  # kept: a dropped iterator disconnects
        for resp, line in zip(opened, lines, strict=True):
            assert resp.status_code == 200
            assert next(line).startswith("retry:")
        refused = http.get(url)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
        streams[0].__exit__(None, None, None)

        def slot_freed() -> bool:
            with http.stream("GET", url) as again:
                return again.status_code == 200

        deadline = time.monotonic() + 15
        while not slot_freed():  # the server notices the disconnect within a poll period
            assert time.monotonic() < deadline, "closed stream's slot never freed"
            time.sleep(0.2)
        streams[1].__exit__(None, None, None)


# ------------------------------------------------------------------ no secret echoed or logged


def test_validation_errors_never_echo_the_body() -> None:
    client = TestClient(_app(Settings(api_tokens=TOKEN)))
    hook = {"type": "webhook", "url": "https://93.184.215.14/h", "secret": HOOK_SECRET}
    bodies: list[Any] = [
        [{"name": "x", "channel": hook}],  # not an object: FastAPI's own 422
        {"name": "x", "channel": {**hook, "url": "ftp://x"}},
        {"name": "x", "channel": {**hook, "secret": "short-" + HOOK_SECRET[:5]}},
        {"name": "\x00", "channel": hook},
    ]
    for body in bodies:
        resp = client.post("/api/subscriptions", headers=auth(), json=body)
        assert resp.status_code == 422, resp.text
        assert HOOK_SECRET[:10] not in resp.text and "input" not in resp.json()["detail"][0]


def test_no_configured_secret_reaches_any_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_dns(url: str, allowlist: Any) -> None:
        return None

    monkeypatch.setattr(routes_subscriptions, "check_url", no_dns)
    settings = Settings(
        api_tokens=SecretStr(TOKEN),
        secret_key=SecretStr(SECRET_KEY),
        api_rate_search=0.001,
        api_rate_search_burst=1,
    )
    es = EmptyEs()
    caplog.set_level(logging.DEBUG)
    client = TestClient(_app(settings, es))
    hook = {"type": "webhook", "url": "https://93.184.215.14/h?k=url-cred", "secret": HOOK_SECRET}
    created = client.post("/api/subscriptions", headers=auth(), json={"name": "n", "channel": hook})
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert client.get(f"/api/subscriptions/{sid}", headers=auth()).status_code == 200
    assert client.get("/api/subscriptions", headers=auth()).status_code == 200
    short = {**hook, "secret": "x" + HOOK_SECRET[:8]}
    bad = client.post("/api/subscriptions", headers=auth(), json={"name": "n", "channel": short})
    assert bad.status_code == 422
    assert client.get("/api/search", headers=auth("wrong-" + TOKEN)).status_code == 200
    assert client.get("/api/search", headers=auth("wrong-" + TOKEN)).status_code == 429
    stored = json.dumps(es.docs)
    logs = caplog.text + "\n".join(repr(r.args) for r in caplog.records)
    assert caplog.records, "the scenario logged something (else this proves nothing)"
    for secret in (TOKEN, HOOK_SECRET, SECRET_KEY, "url-cred", HOOK_SECRET[:8]):
        assert secret not in logs, secret
    for secret in (HOOK_SECRET, "url-cred"):
        assert secret not in stored, "secrets are sealed at rest"
