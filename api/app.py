"""The HTTP API (FastAPI): health now; search, ingest, subscriptions and dashboard grow here."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from fastapi import FastAPI

from api.limits import BodyGuard
from api.routes_ingest import router as ingest_router
from api.routes_metrics import router as metrics_router
from api.routes_search import router as search_router
from api.routes_subscriptions import router as subscriptions_router
from cpwatch import __version__
from cpwatch.settings import get_settings


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(title="cpwatch", version=__version__)
    app.add_middleware(BodyGuard)

    app.include_router(search_router)
    app.include_router(subscriptions_router)
    app.include_router(ingest_router)
    app.include_router(metrics_router)  # /metrics: this process's Prometheus series
    from api.routes_dashboard import router as dashboard_router  # `/` and its JSON

    app.include_router(dashboard_router)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        es = redact_url(settings.es_url)
        return {"status": "ok", "kafka": settings.kafka_bootstrap, "elasticsearch": es}

    return app


def redact_url(url: str) -> str:
    """``url`` without its user:password part (an ES URL may carry credentials)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
