"""Subscriptions and alerts API without engines: tokens and scopes (401/403), masked subscriber
contacts, acked_by as the token's label, and the token file (hashed, 0600, revocable)."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import NotFoundError
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.masking import mask_email, mask_url
from api.routes_subscriptions import es_client, subscription_settings
from api.server import create_app
from cpwatch import tokens
from cpwatch.settings import Settings

ENV_TOKEN = "env-token-0c9d8e7f6a5b"
SECRET = "s3cret-s3cret-s3cret"
HOOK = {"type": "webhook", "url": "https://93.184.215.14/hooks/T0K3N-in-path?x=1", "secret": SECRET}
MAIL = {"type": "email", "address": "jane.doe@example.org"}
SLACK = {"type": "slack", "url": "https://93.184.215.14/services/T0/B0/XYZ"}


class FakeEs:
    """Documents by index and id; enough of the client for these routes."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, dict[str, Any]]] = {}

    def options(self, **_: Any) -> FakeEs:
        return self

    def _missing(self) -> NotFoundError:
        return NotFoundError("not found", meta=None, body={})  # type: ignore[arg-type]

    def index(self, *, index: str, id: str, document: dict[str, Any], **_: Any) -> None:
        self.docs.setdefault(index, {})[id] = json.loads(json.dumps(document))

    def get(self, *, index: str, id: str, **_: Any) -> dict[str, Any]:
        if id not in self.docs.get(index, {}):
            raise self._missing()
        return {"_source": self.docs[index][id]}

    def update(self, *, index: str, id: str, doc: dict[str, Any], **_: Any) -> None:
        self.get(index=index, id=id)
        self.docs[index][id].update(doc)

    def delete(self, *, index: str, id: str, **_: Any) -> None:
        self.get(index=index, id=id)
        del self.docs[index][id]

    def search(self, *, index: str, size: int = 10, **_: Any) -> dict[str, Any]:
        found = list(self.docs.get(index, {}).values())[:size]
        return {"hits": {"total": {"value": len(found)}, "hits": [{"_source": d} for d in found]}}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, api_tokens=SecretStr(f"sha256:{'0' * 64},{ENV_TOKEN}"))


@pytest.fixture
def es(settings: Settings) -> FakeEs:
    es = FakeEs()
    alert = {"fingerprint": "fp1", "rule": "r", "holder": "SV", "ts": "2025-01-01T00:00:00Z"}
    es.index(index=settings.index("alerts"), id="fp1", document=alert)
    return es


@pytest.fixture
def client(settings: Settings, es: FakeEs) -> TestClient:
    app = create_app()
    app.dependency_overrides[subscription_settings] = lambda: settings
    app.dependency_overrides[es_client] = lambda: es
    return TestClient(app)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sub_body(name: str, channel: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "query": "IMF", "channel": channel}


READS = [("GET", "/api/subscriptions"), ("GET", "/api/subscriptions/x"), ("GET", "/api/alerts")]
WRITES = [
    ("POST", "/api/subscriptions"),
    ("PUT", "/api/subscriptions/x"),
    ("DELETE", "/api/subscriptions/x"),
    ("POST", "/api/subscriptions/x/silence?until=2030-01-01T00:00:00Z"),
    ("POST", "/api/subscriptions/x/test"),
    ("POST", "/api/alerts/fp1/ack"),
    ("POST", "/api/ingest/news"),
]


def test_every_route_needs_a_token_and_writes_need_write_scope(
    client: TestClient, settings: Settings
) -> None:
    read_token, _ = tokens.create(settings, "read", "reader")
    body = sub_body("x", MAIL)
    for method, path in READS + WRITES:
        for headers in ({}, bearer("wrong"), {"Authorization": "Basic abc"}):
            resp = client.request(method, path, headers=headers, json=body)
            assert resp.status_code == 401, (method, path, headers)
            assert resp.headers["www-authenticate"].startswith("Bearer")
    for method, path in WRITES:
        resp = client.request(method, path, headers=bearer(read_token), json=body)
        assert resp.status_code == 403, (method, path)
        assert 'scope="write"' in resp.headers["www-authenticate"]
    assert client.get("/api/subscriptions", headers=bearer(read_token)).status_code == 200
    assert client.get("/api/alerts", headers=bearer(read_token)).status_code == 200
    assert client.get("/api/subscriptions/x", headers=bearer(read_token)).status_code == 404
    # The public read routes stay open.
    assert client.get("/healthz").status_code == 200


def test_write_tokens_from_the_file_and_the_environment(
    client: TestClient, settings: Settings
) -> None:
    write_token, _ = tokens.create(settings, "write", "ops")
    for token in (write_token, ENV_TOKEN):
        created = client.post("/api/subscriptions", json=sub_body("m", MAIL), headers=bearer(token))
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        assert client.delete(f"/api/subscriptions/{sid}", headers=bearer(token)).status_code == 204


def test_responses_mask_contacts_and_never_carry_secrets(
    client: TestClient, settings: Settings
) -> None:
    auth = bearer(ENV_TOKEN)
    ids = []
    for name, channel in (("hook", HOOK), ("mail", MAIL), ("slack", SLACK)):
        resp = client.post("/api/subscriptions", json=sub_body(name, channel), headers=auth)
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    read_token, _ = tokens.create(settings, "read")
    texts = [client.get("/api/subscriptions", headers=bearer(read_token)).text]
    texts += [client.get(f"/api/subscriptions/{i}", headers=auth).text for i in ids]
    put = client.put(f"/api/subscriptions/{ids[0]}", json=sub_body("hook", HOOK), headers=auth)
    silence = f"/api/subscriptions/{ids[1]}/silence?until=2030-01-01T00:00:00Z"
    texts += [put.text, client.post(silence, headers=auth).text]
    for text in texts:
        for leak in (SECRET, "T0K3N", "hooks/", "x=1", "jane.doe", "XYZ", "services"):
            assert leak not in text, (leak, text)
    channels = {s["name"]: s["channel"] for s in json.loads(texts[0])["subscriptions"]}
    assert channels["hook"] == {
        "type": "webhook",
        "url": "https://93.184.215.14/***",
        "secret": "********",
    }
    assert channels["mail"] == {"type": "email", "address": "j***@example.org"}
    assert channels["slack"] == {"type": "slack", "url": "https://93.184.215.14/***"}


def test_masking_helpers() -> None:
    assert mask_email("a@b.example") == "a***@b.example"
    assert mask_url("https://u:p@h.example:8443/p/q?t=1#f") == "https://h.example:8443/***"
    assert mask_url("http://[::1]/x") == "http://[::1]/***"


def test_acked_by_is_the_token_label(client: TestClient, settings: Settings, es: FakeEs) -> None:
    token, _ = tokens.create(settings, "write", "alice")
    acked = client.post("/api/alerts/fp1/ack", headers=bearer(token))
    assert acked.status_code == 200 and acked.json()["acked_by"] == "alice"
    assert hashlib.sha256(token.encode()).hexdigest()[:12] not in acked.text
    env = client.post("/api/alerts/fp1/ack", headers=bearer(ENV_TOKEN)).json()
    assert env["acked_by"] == "env-2"  # second entry of CPWATCH_API_TOKENS
    listed = client.get("/api/alerts", headers=bearer(token)).json()["alerts"]
    assert listed[0]["acked_by"] == "env-2"
    assert client.post("/api/alerts/nope/ack", headers=bearer(token)).status_code == 404


def test_token_file_hashed_0600_listed_and_revoked(client: TestClient, settings: Settings) -> None:
    token, entry = tokens.create(settings, "write", "ci")
    path = settings.home / tokens.FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token.startswith(tokens.PREFIX) and len(token) >= 40
    text = path.read_text()
    assert token not in text and hashlib.sha256(token.encode()).hexdigest() in text
    assert (entry.label, entry.scope) == ("ci", "write") and entry.created
    other, _ = tokens.create(settings, "read")
    assert other != token
    assert [(t.label, t.scope) for t in tokens.read_file(path)] == [
        ("ci", "write"),
        ("read-1", "read"),
    ]
    with pytest.raises(tokens.TokenError):
        tokens.create(settings, "write", "ci")  # labels are unique
    with pytest.raises(tokens.TokenError):
        tokens.create(settings, "write", "env-1")  # reserved for CPWATCH_API_TOKENS
    with pytest.raises(tokens.TokenError):
        tokens.create(settings, "admin")
    assert client.get("/api/alerts", headers=bearer(token)).status_code == 200
    tokens.revoke(settings, "ci")
    assert client.get("/api/alerts", headers=bearer(token)).status_code == 401
    assert client.get("/api/alerts", headers=bearer(other)).status_code == 200
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(tokens.TokenError):
        tokens.revoke(settings, "ci")


def test_cli_tokens_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from app.cli import app
    from cpwatch.settings import get_settings

    monkeypatch.setenv("CPWATCH_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        made = runner.invoke(app, ["tokens", "create", "--scope", "read", "--label", "me"])
        assert made.exit_code == 0, made.output
        token = made.stdout.strip().splitlines()[0]
        assert token.startswith(tokens.PREFIX)
        listed = runner.invoke(app, ["tokens", "list", "--json"])
        assert json.loads(listed.stdout.splitlines()[0])["label"] == "me"
        assert token not in listed.output and "sha256" not in listed.stdout
        assert runner.invoke(app, ["tokens", "revoke", "me"]).exit_code == 0
        assert runner.invoke(app, ["tokens", "revoke", "me"]).exit_code == 1
        assert runner.invoke(app, ["tokens", "create", "--scope", "root"]).exit_code == 2
    finally:
        get_settings.cache_clear()


def test_client_token_and_any_configured(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert tokens.client_token(s) is None and not tokens.any_configured(s)
    # The CLI sends CPWATCH_API_TOKEN; failing that, the server's first plain token.
    old = s.model_copy(update={"api_tokens": SecretStr("sha256:ab, first ,second")})
    assert tokens.client_token(old) == "first" and tokens.any_configured(old)
    both = old.model_copy(update={"api_token": SecretStr("mine")})
    assert tokens.client_token(both) == "mine"
    tokens.create(s, "read")
    assert tokens.any_configured(s)


def test_open_dashboard_does_not_show_who_acked() -> None:
    from tests.unit.api import test_dashboard as td

    class Es(td.FakeEs):
        def search(self, *, index: str, **body: Any) -> td.Resp:
            # what older alerts carry: a prefix of the token's hash
            return td.Resp(hits={"hits": [{"_source": {**td.ACKED, "acked_by": "0123456789ab"}}]})

    body = td.client(Es()).get("/api/dashboard/alerts").json()
    assert body["recent"][0]["acked_at"] and "acked_by" not in json.dumps(body)
