"""The API as a subscriber uses it in tests: a write token, a client on a test's settings and
subscription bodies (webhook channels signed with ``SECRET``)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cpwatch.settings import Settings
from tests.receiver import HttpReceiver

TOKEN = "test-token-5f1e0c2a9b"
SECRET = "s3cret-webhook-key-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def api_client(settings: Settings) -> TestClient:
    """The API app on ``settings`` (every route's settings dependency overridden)."""
    from api.routes_subscriptions import subscription_settings
    from api.server import create_app

    app = create_app()
    app.dependency_overrides[subscription_settings] = lambda: settings
    return TestClient(app)


def subscription(
    name: str, channel: dict[str, Any], query: str | None = None, **filters: list[str]
) -> dict[str, Any]:
    """A subscription body that delivers at once (no group wait)."""
    return {
        "name": name,
        "query": query,
        "channel": channel,
        "filters": filters,
        "group_wait": "0s",
        "group_interval": "1s",
    }


def webhook(receiver: HttpReceiver, path: str) -> dict[str, Any]:
    """A webhook channel to ``path`` on ``receiver``."""
    return {"type": "webhook", "url": receiver.url(path), "secret": SECRET}
