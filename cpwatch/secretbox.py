"""Channel secrets encrypted at rest: AES-256-GCM envelopes keyed by ``CPWATCH_SECRET_KEY``.

A stored secret is ``{"enc": "v1", "kid": <key id>, "ct": <base64 of nonce + ciphertext>}``.
AES-GCM (not Fernet) because it authenticates associated data: each envelope is bound to the
subscription id and field it belongs to, so a ciphertext copied into another subscription or
field does not decrypt. The key id is a short SHA-256 prefix of the key, so a reader picks the
right key among the current and old ones (``CPWATCH_SECRET_KEY_OLD``) without trying each.
Without a key the box is "clear": values are stored as they are (and a warning is logged once).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cpwatch.exceptions import ConfigError
from cpwatch.settings import Settings, get_settings

VERSION = "v1"
NONCE_BYTES = 12  # random 96-bit nonces: far below the 2^32 messages per key GCM allows


class SecretBoxError(ValueError):
    """A stored secret that cannot be decrypted (no key, unknown key, tampered). Messages never
    contain the secret."""


def new_key() -> str:
    """A fresh key in the form ``CPWATCH_SECRET_KEY`` takes."""
    return base64.b64encode(os.urandom(32)).decode()


def parse_key(text: str) -> bytes:
    """Standard or URL-safe base64 of exactly 32 bytes; the error never echoes the value."""
    raw = text.strip().replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("secret key: not base64 (make one: `cpwatch secrets keygen`)") from None
    if len(key) != 32:
        raise ConfigError(f"secret key: {len(key)} bytes, needs 32 (`cpwatch secrets keygen`)")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"cpwatch-secretbox-kid" + key).hexdigest()[:12]


def is_envelope(value: object) -> bool:
    return isinstance(value, Mapping) and "enc" in value and "ct" in value


@dataclass(frozen=True)
class SecretBox:
    """Encrypts with ``current`` (None: stores in the clear); decrypts with any known key."""

    current: bytes | None = None
    old: tuple[bytes, ...] = ()
    _by_id: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = ([self.current] if self.current else []) + list(self.old)
        object.__setattr__(self, "_by_id", {key_id(k): k for k in keys})

    @property
    def enabled(self) -> bool:
        return self.current is not None

    @property
    def current_kid(self) -> str | None:
        return key_id(self.current) if self.current else None

    def seal(self, plaintext: str, context: str) -> dict[str, str] | str:
        """The envelope for ``plaintext`` bound to ``context``; the text itself when clear."""
        if self.current is None:
            return plaintext
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(NONCE_BYTES)
        ct = AESGCM(self.current).encrypt(nonce, plaintext.encode(), _aad(context))
        return {"enc": VERSION, "kid": key_id(self.current), "ct": _b64(nonce + ct)}

    def open(self, stored: Any, context: str) -> Any:
        """The plaintext of an envelope; anything else (clear legacy values) as it is."""
        if not is_envelope(stored):
            return stored
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if stored.get("enc") != VERSION:
            raise SecretBoxError(f"{context}: unknown envelope version {stored.get('enc')!r}")
        key = self._by_id.get(str(stored.get("kid")))
        if key is None:
            known = "no CPWATCH_SECRET_KEY is set" if not self._by_id else "not a configured key"
            raise SecretBoxError(f"{context}: encrypted with key {stored.get('kid')!r}; {known}")
        try:
            blob = base64.b64decode(str(stored["ct"]), validate=True)
            plain = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(context))
        except (binascii.Error, ValueError, InvalidTag):
            raise SecretBoxError(f"{context}: ciphertext does not authenticate") from None
        return plain.decode()

    def needs_rotation(self, stored: Any) -> bool:
        """True for a clear value or an envelope under another key than the current one."""
        if self.current is None:
            return False
        return not is_envelope(stored) or stored.get("kid") != self.current_kid


def _aad(context: str) -> bytes:
    return f"cpwatch/{VERSION}/{context}".encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def from_settings(settings: Settings) -> SecretBox:
    """The box of these settings' keys (cached: routes ask on every request)."""
    current = settings.secret_key.get_secret_value() if settings.secret_key else ""
    return _box(
        current, settings.secret_key_old.get_secret_value() if settings.secret_key_old else ""
    )


@lru_cache(maxsize=8)
def _box(current: str, old_text: str) -> SecretBox:
    old = tuple(parse_key(k) for k in old_text.split(",") if k.strip())
    return SecretBox(parse_key(current) if current.strip() else None, old)


@lru_cache(maxsize=1)
def default_box() -> SecretBox:
    """The process's box, from ``get_settings()`` (what readers without settings use)."""
    return from_settings(get_settings())
