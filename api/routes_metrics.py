"""``GET /metrics``: this API process's Prometheus metrics, on the API's own port."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

import cpwatch.metrics  # noqa: F401 - defines the cpwatch_* series this process exports

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
