"""``GET /api/search``: full-text search over events, articles or alerts, with facets.

Every bad parameter is a 400 naming it (``{"detail": ..., "param": ...}``), including the type
errors FastAPI itself would answer with 422, so clients see one error shape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from elasticsearch import Elasticsearch
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from api import search_service
from api.search import DEFAULT_SIZE, MAX_SIZE, QueryError, parse_params
from cpwatch.exceptions import EngineError
from cpwatch.settings import Settings, get_settings


class _BadRequestRoute(APIRoute):
    """Answer request validation failures with 400 and the parameter's name."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                param = str(first.get("loc", ["", "?"])[-1])
                return JSONResponse(
                    {"detail": f"{param}: {first.get('msg', 'invalid')}", "param": param}, 400
                )
            except QueryError as exc:
                return JSONResponse({"detail": str(exc), "param": exc.param}, 400)
            except EngineError as exc:
                return JSONResponse({"detail": str(exc)}, 503)

        return route


router = APIRouter(prefix="/api", tags=["search"], route_class=_BadRequestRoute)
_client_lock = threading.Lock()


def search_settings() -> Settings:
    """Settings for search; tests override this dependency to point at their own indices."""
    return get_settings()


def es_client(
    request: Request, settings: Annotated[Settings, Depends(search_settings)]
) -> Elasticsearch:
    """One client (connection pool) per app, made on first use: no I/O at import or startup."""
    with _client_lock:
        es = getattr(request.app.state, "search_es", None)
        if es is None:
            es = request.app.state.search_es = search_service.client(settings)
    return es


class Hit(BaseModel):
    id: str
    index: str
    title: str
    categories: list[str]
    countries: list[str]
    published: str | None
    score: float | None
    highlight: dict[str, list[str]]
    source: str | None = None


class SearchResult(BaseModel):
    total: int
    hits: list[Hit]
    facets: dict[str, list[tuple[str | int, int]]]
    next: str | None
    timed_out: bool = False


def _q(text: str) -> Any:
    return Query(description=text)


Words = Annotated[
    str,
    _q('Words (all must match); OR or |; NOT or -; "phrase"; prefix*; ( ). OR binds before AND.'),
]
Many = list[str] | None
When = str | None


@router.get("/search", response_model=SearchResult)
def search(
    settings: Annotated[Settings, Depends(search_settings)],
    es: Annotated[Elasticsearch, Depends(es_client)],
    q: Words = "",
    category: Annotated[Many, _q("Category filter; repeat for OR.")] = None,
    country: Annotated[Many, _q("ISO country code filter; repeat for OR.")] = None,
    org: Annotated[Many, _q("Organisation filter; repeat for OR.")] = None,
    since: Annotated[When, _q("From this ISO date or datetime (inclusive).")] = None,
    until: Annotated[When, _q("Up to this ISO date (whole day) or datetime.")] = None,
    index: Annotated[str, _q("events, articles or alerts.")] = "events",
    size: Annotated[int, Query(ge=1, le=MAX_SIZE, description="Hits per page.")] = DEFAULT_SIZE,
    after: Annotated[When, _q("The `next` cursor of the previous page.")] = None,
) -> dict[str, Any]:
    """Relevance-ranked hits with highlighted snippets, facets and a `next` page cursor."""
    params = parse_params(
        q,
        index=index,
        category=category,
        country=country,
        org=org,
        since=since,
        until=until,
        size=size,
        after=after,
    )
    return search_service.search(es, settings, params)
