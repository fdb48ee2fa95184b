"""/readyz answers 503 while an engine is unreachable (no engine runs for this test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cpwatch.settings import get_settings


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Port 9 (discard) has no listener here: both engines are "down".
    monkeypatch.setenv("CPWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("CPWATCH_ES_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_readyz_is_503_while_the_engines_are_unreachable(nowhere: None) -> None:
    from api.server import create_app

    resp = TestClient(create_app()).get("/readyz")
    assert resp.status_code == 503
    assert resp.json() == {"status": "unavailable", "kafka": False, "elasticsearch": False}
    assert TestClient(create_app()).get("/healthz").status_code == 200  # liveness stays up
