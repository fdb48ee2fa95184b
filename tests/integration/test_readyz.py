"""/readyz answers 200 when the real Kafka and Elasticsearch answer."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cpwatch.settings import Settings, get_settings

pytestmark = pytest.mark.integration


def test_readyz_is_200_with_the_engines_up(stack: Settings) -> None:
    from api.server import create_app

    get_settings.cache_clear()  # the stack's settings come from this environment too
    resp = TestClient(create_app()).get("/readyz")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "ready", "kafka": True, "elasticsearch": True}
