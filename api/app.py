"""The HTTP API (FastAPI): health now; search, ingest, subscriptions and dashboard grow here."""

from __future__ import annotations

from fastapi import FastAPI

from api.routes_ingest import router as ingest_router
from api.routes_metrics import router as metrics_router
from api.routes_search import router as search_router
from api.routes_subscriptions import router as subscriptions_router
from cpwatch import __version__
from cpwatch.settings import get_settings


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(title="cpwatch", version=__version__)

    app.include_router(search_router)
    app.include_router(subscriptions_router)
    app.include_router(ingest_router)
    app.include_router(metrics_router)  # /metrics: this process's Prometheus series
    from api.routes_dashboard import router as dashboard_router  # `/` and its JSON

    app.include_router(dashboard_router)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "kafka": settings.kafka_bootstrap, "elasticsearch": settings.es_url}

    return app
