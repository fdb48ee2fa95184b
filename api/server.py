"""The HTTP API (FastAPI): health now; search, ingest, subscriptions and dashboard grow here."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from elasticsearch import Elasticsearch
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.hosts import TrustedHost
from api.limits import BodyGuard, RateLimit
from api.routes_ingest import router as ingest_router
from api.routes_metrics import router as metrics_router
from api.routes_search import es_client
from api.routes_search import router as search_router
from api.routes_subscriptions import router as subscriptions_router
from cpwatch import __version__, secretbox
from cpwatch.settings import Settings, get_settings

log = logging.getLogger(__name__)
_warned = False


def create_app() -> FastAPI:
    settings = get_settings()
    _check_secret_key(settings)
    app = FastAPI(title="cpwatch", version=__version__, lifespan=_close_clients)
    # The last added runs first: Host check, then token and body size, then the rate.
    app.add_middleware(RateLimit)
    app.add_middleware(BodyGuard)
    app.add_middleware(TrustedHost)
    app.add_exception_handler(RequestValidationError, _validation_error)

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

    @app.get("/readyz")
    def readyz(es: Annotated[Elasticsearch, Depends(es_client)]) -> JSONResponse:
        # For load balancers and Kubernetes: 503 while either engine is unreachable, so the
        # pod leaves the Service instead of answering every search with an error. The probe
        # asks through the client searches use (one connection pool per app).
        checks = {"kafka": _kafka_reachable(settings), "elasticsearch": _es_reachable(es)}
        ready = all(checks.values())
        body = {"status": "ready" if ready else "unavailable", **checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    return app


def _kafka_reachable(settings: Settings, timeout_s: float = 2.0) -> bool:
    """A bootstrap server accepts a connection (cheap; authentication is the worker's check)."""
    for server in settings.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def _es_reachable(es: Elasticsearch, timeout_s: float = 2.0) -> bool:
    try:
        # Cluster health, not ping: the minimal distribution has no root ("/") endpoint.
        health = es.options(request_timeout=timeout_s).cluster.health()
        return health.get("status") in ("green", "yellow")
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False


@asynccontextmanager
async def _close_clients(app: FastAPI) -> AsyncIterator[None]:
    """At shutdown, close the Elasticsearch clients the routes made on first use."""
    yield
    for name in ("search_es", "subscriptions_es"):
        es = getattr(app.state, name, None)
        if es is not None:
            es.close()
            setattr(app.state, name, None)


def _check_secret_key(settings: Settings) -> None:
    """A bad key stops the server; no key works (``make run``) with one warning."""
    global _warned
    box = secretbox.from_settings(settings)  # ConfigError on a malformed key
    if not box.enabled and not _warned:
        _warned = True
        log.warning(
            "CPWATCH_SECRET_KEY is not set: channel secrets are stored in the clear in"
            " Elasticsearch (make a key with `cpwatch secrets keygen`)"
        )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 without the rejected input: a body may carry a channel secret."""
    errors: list[dict[str, Any]] = []
    if isinstance(exc, RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


def redact_url(url: str) -> str:
    """``url`` without its user:password part (an ES URL may carry credentials)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
