"""Request guards that act before a body is read: the token of a write, the body's size, and
the rate of search and ingest requests (``RateLimit``).

FastAPI resolves dependencies, the token check among them, only after it has read and parsed
the body; a 100 MB POST without a token would be read first. This ASGI middleware answers 401
to a write under ``/api/`` whose token is missing or unknown before reading one byte of its
body (the routes still check the scope), and 413 to a body over ``api_max_body_bytes``, from
its Content-Length or while it streams in.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import api_settings, authenticate
from api.ratelimit import Buckets, retry_after
from cpwatch.settings import Settings

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _TooLarge(HTTPException):
    """Raised from ``receive``: FastAPI's body parser passes HTTPExceptions through (anything
    else it reports as a 400), so the route answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


async def answer(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    # Close the connection: the client may still be sending a body nobody will read.
    raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITES:
            await self.app(scope, receive, send)
            return
        settings = request_settings(scope)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["path"].startswith("/api/"):
            try:
                authenticate(settings, headers.get("authorization"))
            except HTTPException as exc:
                await answer(send, exc.status_code, str(exc.detail), dict(exc.headers or {}))
                return
        limit = settings.api_max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await answer(send, 413, f"request body over {limit} bytes", {})
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge as exc:
            if not started:
                await answer(send, exc.status_code, str(exc.detail), {})


# Routes with a token bucket (api/ratelimit.py): path prefix -> the settings that size it.
RATED = (("/api/search", "search"), ("/api/events/stream", "search"), ("/api/ingest/", "ingest"))


class RateLimit:
    """429 with Retry-After once a caller's bucket for search or ingest is empty. The caller is
    its token's label when it sends a valid token, else its address: an unknown token cannot
    buy a fresh bucket. Behind a proxy every anonymous caller shares the proxy's address
    unless the server is run with its proxy headers trusted (uvicorn --forwarded-allow-ips)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._buckets: dict[tuple[str, float, int], Buckets] = {}

    def _for(self, kind: str, settings: Settings) -> Buckets:
        rate = float(getattr(settings, f"api_rate_{kind}"))
        burst = int(getattr(settings, f"api_rate_{kind}_burst"))
        key = (kind, rate, burst)
        if key not in self._buckets:
            self._buckets[key] = Buckets(rate, burst)
        return self._buckets[key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        kind = next((k for prefix, k in RATED if path.startswith(prefix)), None)
        if kind is None:
            await self.app(scope, receive, send)
            return
        settings = request_settings(scope)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            caller = "token:" + authenticate(settings, headers.get("authorization")).label
        except HTTPException:
            client = scope.get("client")
            caller = "ip:" + (str(client[0]) if client else "?")
        wait = self._for(kind, settings).take(caller)
        if wait > 0:
            detail = f"{kind} rate limit exceeded; retry after the Retry-After seconds"
            await answer(send, 429, detail, {"Retry-After": retry_after(wait)})
            return
        await self.app(scope, receive, send)


def request_settings(scope: Scope) -> Settings:
    """Settings as the routes see them (tests override the dependency on the app)."""
    fastapi_app: Any = scope.get("app")
    overrides = getattr(fastapi_app, "dependency_overrides", {})
    return overrides.get(api_settings, api_settings)()
