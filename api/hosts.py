"""Trusted Host header, against DNS rebinding.

A page on ``evil.example`` whose name an attacker re-points to 127.0.0.1 can make a browser call
the local API; its requests still carry ``Host: evil.example``. Anything not in
``CPWATCH_API_ALLOWED_HOSTS`` (default: localhost, 127.0.0.1, [::1] and ``api_host``) is a 400.
The address the connection reached (ASGI ``server``, taken from the socket, not the request)
is always accepted: a browser sends it only when it was pointed at that address itself.
Settings are read per request as the routes read them, so tests can override them.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api.limits import answer, request_settings
from cpwatch.settings import Settings

LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


def allowed_hosts(settings: Settings) -> tuple[str, ...]:
    given = [h.strip().lower() for h in settings.api_allowed_hosts.split(",") if h.strip()]
    return tuple(given or (*LOOPBACK, settings.api_host.lower()))


def host_name(header: str) -> str:
    """``Host`` without its port, lower-case; IPv6 keeps its brackets."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(host: str, patterns: tuple[str, ...], own: str | None = None) -> bool:
    if not host:
        return False
    if own is not None and host == own:
        return True
    for p in patterns:
        if p == "*" or host == p or (p.startswith("*.") and host.endswith(p[1:])):
            return True
    return False


def _own_address(scope: Scope) -> str | None:
    server = scope.get("server")
    if not server or not server[0]:
        return None
    name = str(server[0]).lower()
    return f"[{name}]" if ":" in name else name


class TrustedHost:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        settings = request_settings(scope)
        raw = next((v for k, v in scope["headers"] if k == b"host"), b"")
        host = host_name(raw.decode("latin-1"))
        if not host_allowed(host, allowed_hosts(settings), _own_address(scope)):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await answer(send, 400, "Host header not allowed (CPWATCH_API_ALLOWED_HOSTS)", {})
            return
        await self.app(scope, receive, send)
