"""Bearer-token authentication with scopes for the API.

A request's token is hashed once and compared in constant time with every accepted token's
digest (``CPWATCH_API_TOKENS``: write scope, labels env-N; the token file of ``cpwatch tokens``:
its own scope and label). No token or an unknown one is a 401; a read token on a write route a
403. The caller is known by its label only, which is what ``acked_by`` records.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Header, HTTPException

from cpwatch import tokens
from cpwatch.settings import Settings, get_settings

log = logging.getLogger(__name__)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def api_settings() -> Settings:
    """Settings for the authenticated routes; tests override this dependency."""
    return get_settings()


SettingsDep = Annotated[Settings, Depends(api_settings)]


@dataclass(frozen=True)
class Caller:
    label: str
    scope: tokens.Scope


class _FileCache:
    """The token file, re-read when it changes, so `cpwatch tokens create|revoke` takes effect
    on the next request without restarting the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[object, ...] | None = None
        self._creds: list[tokens.Credential] = []

    def get(self, path: Path) -> list[tokens.Credential]:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return []
        key = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if key != self._key:
                try:
                    self._creds = tokens.file_credentials(path)
                except (OSError, tokens.TokenError) as exc:
                    log.warning("token file unreadable, its tokens are refused: %s", exc)
                    self._creds = []
                self._key = key
            return self._creds


_file_cache = _FileCache()


def credentials(settings: Settings) -> list[tokens.Credential]:
    return tokens.env_credentials(settings) + _file_cache.get(tokens.token_file(settings))


def authenticate(settings: Settings, authorization: str | None) -> Caller:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(
            401, "missing bearer token (Authorization: Bearer <token>)", headers=_CHALLENGE
        )
    presented = tokens.digest(authorization[7:].strip())
    found: tokens.Credential | None = None
    for cred in credentials(settings):
        # No early exit: every request costs the same whichever token (if any) matches.
        if hmac.compare_digest(presented, cred.digest) and found is None:
            found = cred
    if found is None:
        raise HTTPException(401, "invalid token", headers=_CHALLENGE)
    return Caller(found.label, found.scope)


def _require(scope: tokens.Scope) -> Callable[..., Caller]:
    """A dependency: the caller, if its token has ``scope`` (write implies read)."""

    def dependency(
        settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
    ) -> Caller:
        caller = authenticate(settings, authorization)
        if not tokens.allows(caller.scope, scope):
            raise HTTPException(
                403,
                f"token {caller.label!r} has {caller.scope} scope; this needs {scope}",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        return caller

    return dependency


ReadDep = Annotated[Caller, Depends(_require("read"))]
WriteDep = Annotated[Caller, Depends(_require("write"))]
