"""``GET /metrics``: this API process's Prometheus metrics, on the API's own port.

``cpwatch_alerts_firing`` is computed here, at scrape time, by the dashboard's own function
(``api.routes_dashboard.firing_count``), so the gauge and the dashboard never disagree.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

import cpwatch.metrics  # noqa: F401 - defines the cpwatch_* series this process exports
from api.routes_dashboard import firing_count
from api.routes_subscriptions import EsDep, SettingsDep

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(settings: SettingsDep, es: EsDep) -> Response:
    firing_count(es, settings)  # Elasticsearch down: the gauge keeps its last value
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
