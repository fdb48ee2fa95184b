"""The one Elasticsearch call behind search (API, CLI and bench share it).

Settings used: es_index_prefix (alias names) and the client options of ``es_client_kwargs``.
Elasticsearch errors are translated here: a rejected query is the user's ``QueryError`` (400),
anything else an ``EngineError`` (503).
"""

from __future__ import annotations

from typing import Any

from elasticsearch import ApiError, BadRequestError, Elasticsearch, TransportError

from api.search import QueryError, SearchParams, build_request, shape_response
from cpwatch.exceptions import EngineError
from cpwatch.settings import Settings

REQUEST_TIMEOUT_S = 10.0  # client side; the body's own timeout (5s) normally answers first


def client(settings: Settings) -> Elasticsearch:
    return Elasticsearch(**settings.es_client_kwargs())  # type: ignore[arg-type]


def search(es: Elasticsearch, settings: Settings, params: SearchParams) -> dict[str, Any]:
    """Run one search on the logical index ``params.index``; return the public result shape."""
    body = build_request(params)
    try:
        resp = es.options(request_timeout=REQUEST_TIMEOUT_S).search(
            index=settings.index(params.index),
            body=body,
            # Before the sink first ran the alias does not exist: an empty answer, not a 404.
            ignore_unavailable=True,
            allow_no_indices=True,
        )
    except BadRequestError as exc:
        raise QueryError("q", f"rejected by Elasticsearch: {_reason(exc)}") from exc
    except (ApiError, TransportError) as exc:
        raise EngineError(f"search on {settings.index(params.index)} failed: {exc}") from exc
    return shape_response(params, resp.body)


def _reason(exc: ApiError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    err = info.get("error", {})
    causes = (err.get("root_cause") or [err]) if isinstance(err, dict) else []
    return str(causes[0].get("reason", exc.message)) if causes else str(exc.message)
