"""API bearer tokens: a small file store (``cpwatch tokens``) plus ``CPWATCH_API_TOKENS``.

A token is 32 random bytes (URL-safe text, ``cpw_`` prefix); the file keeps only its SHA-256
with a label, a scope (``read`` or ``write``; write implies read) and when it was made. An
unsalted hash is enough here: a 256-bit random secret cannot be found from its hash by a
dictionary, unlike a human-chosen one. The file lives under ``CPWATCH_HOME`` with mode 0600 and
is rewritten atomically under a lock. Both the CLI and the API import this module; it imports
neither of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cpwatch.settings import Settings

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
FILE_NAME = "api-tokens.json"
PREFIX = "cpw_"
ENV_LABEL = "env-"  # env tokens are labelled env-1, env-2, ... by position
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class TokenError(ValueError):
    """A bad label or scope, a duplicate, or an unknown label."""


@dataclass(frozen=True)
class StoredToken:
    label: str
    scope: Scope
    created: str
    sha256: str  # hex digest of the token


@dataclass(frozen=True)
class Credential:
    """One accepted token, as the server matches it: digest, who, what it may do."""

    digest: bytes
    label: str
    scope: Scope


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def allows(scope: str, needed: Scope) -> bool:
    return scope == "write" or scope == needed


def token_file(settings: Settings) -> Path:
    return settings.api_tokens_file or settings.home / FILE_NAME


def read_file(path: Path) -> list[StoredToken]:
    """The stored tokens; none if the file is absent. Malformed entries are skipped."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise TokenError(f"{path}: not a token file ({exc.__class__.__name__})") from None
    out = []
    for e in raw.get("tokens", []) if isinstance(raw, dict) else []:
        try:
            t = StoredToken(str(e["label"]), e["scope"], str(e["created"]), str(e["sha256"]))
            bytes.fromhex(t.sha256)
        except (KeyError, TypeError, ValueError):
            continue
        if t.scope in SCOPES:
            out.append(t)
    return out


def _write(path: Path, tokens: list[StoredToken]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"version": 1, "tokens": [asdict(t) for t in tokens]}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)  # O_CREAT's mode is filtered by the umask
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialises read-modify-write of the file between concurrent `cpwatch tokens` calls."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def create(settings: Settings, scope: str, label: str | None = None) -> tuple[str, StoredToken]:
    """A new token (returned once, never stored) and its stored entry."""
    if scope not in SCOPES:
        raise TokenError(f"scope must be read or write, not {scope!r}")
    path = token_file(settings)
    with _locked(path):
        existing = read_file(path)
        labels = {t.label for t in existing}
        if label is None:
            n = 1
            while f"{scope}-{n}" in labels:
                n += 1
            label = f"{scope}-{n}"
        if not _LABEL.match(label) or label.startswith(ENV_LABEL):
            raise TokenError(
                "label: 1-64 letters, digits, . _ @ -, starting with a letter or digit,"
                f" not starting with {ENV_LABEL!r} (reserved for CPWATCH_API_TOKENS)"
            )
        if label in labels:
            raise TokenError(f"a token labelled {label!r} exists (revoke it first)")
        token = PREFIX + secrets.token_urlsafe(32)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        entry = StoredToken(label, scope, created, digest(token).hex())  # type: ignore[arg-type]
        _write(path, [*existing, entry])
    return token, entry


def revoke(settings: Settings, label: str) -> None:
    path = token_file(settings)
    with _locked(path):
        existing = read_file(path)
        kept = [t for t in existing if t.label != label]
        if len(kept) == len(existing):
            raise TokenError(f"no token labelled {label!r}")
        _write(path, kept)


def env_credentials(settings: Settings) -> list[Credential]:
    """``CPWATCH_API_TOKENS`` (comma-separated; ``sha256:<hex>`` entries allowed): write scope,
    labelled env-N by position so a label never reveals anything of the token."""
    raw = settings.api_tokens.get_secret_value() if settings.api_tokens else ""
    out = []
    entries = [e.strip() for e in raw.split(",") if e.strip()]
    for n, entry in enumerate(entries, 1):
        if entry.startswith("sha256:"):
            try:
                d = bytes.fromhex(entry[7:])
            except ValueError:
                continue
        else:
            d = digest(entry)
        out.append(Credential(d, f"{ENV_LABEL}{n}", "write"))
    return out


def file_credentials(path: Path) -> list[Credential]:
    return [Credential(bytes.fromhex(t.sha256), t.label, t.scope) for t in read_file(path)]


def client_token(settings: Settings) -> str | None:
    """What the CLI sends: ``CPWATCH_API_TOKEN``, else the first plain entry of the server's
    ``CPWATCH_API_TOKENS`` (the one name the README used before, so one export serves both)."""
    if settings.api_token and settings.api_token.get_secret_value().strip():
        return settings.api_token.get_secret_value().strip()
    raw = settings.api_tokens.get_secret_value() if settings.api_tokens else ""
    plain = [e.strip() for e in raw.split(",") if e.strip() and not e.strip().startswith("sha256:")]
    return plain[0] if plain else None


def any_configured(settings: Settings) -> bool:
    return bool(env_credentials(settings)) or bool(read_file(token_file(settings)))
