"""A webhook URL whose host IDNA cannot encode is a 422 at creation, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.routes_subscriptions import es_client, subscription_settings
from api.server import create_app
from cpwatch.settings import Settings

TOKEN = "idna-token-0c9d8e7f6a5b"


@pytest.mark.parametrize(
    "host", ["a..example.org", "x" * 64 + ".example.org", "." + "y" * 10 + ".org"]
)
def test_idna_invalid_webhook_host_is_422(tmp_path: Path, host: str) -> None:
    settings = Settings(home=tmp_path, api_tokens=SecretStr(TOKEN))
    app = create_app()
    app.dependency_overrides[subscription_settings] = lambda: settings
    app.dependency_overrides[es_client] = lambda: None  # never reached
    body = {
        "name": "bad host",
        "channel": {"type": "webhook", "url": f"https://{host}/hook", "secret": "s" * 20},
    }
    resp = TestClient(app, raise_server_exceptions=False).post(
        "/api/subscriptions", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert resp.status_code == 422, resp.text
