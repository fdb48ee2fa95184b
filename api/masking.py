"""What the API shows of a subscriber: e-mail addresses and URL paths masked.

Applied on top of ``Subscription.public_dict`` (which already hides secrets). It walks every
channel field rather than naming them, so a channel type added later is masked too: any URL
keeps only scheme://host[:port]/*** (webhook paths often carry a credential), any address
keeps its first character and domain, and any field named like a credential is replaced.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from notify.subscriptions import MASK

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_CREDENTIAL_KEY = re.compile(r"secret|token|password|passwd|key|auth", re.IGNORECASE)


def mask_email(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def mask_url(url: str) -> str:
    p = urlsplit(url)
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{p.port}" if p.port else ""
    return f"{p.scheme}://{host}{port}/***"


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
            try:
                return mask_url(value)
            except ValueError:  # a malformed port
                return MASK
        return mask_email(value) if _EMAIL.match(value) else value
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    if isinstance(value, dict):
        return _mask_channel(value)
    return value


def _mask_channel(channel: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in channel.items():
        if k == "type":
            out[k] = v
        elif _CREDENTIAL_KEY.search(k) and v not in (None, ""):
            out[k] = MASK
        else:
            out[k] = _mask_value(v)
    return out


def public_subscription(doc: dict[str, Any]) -> dict[str, Any]:
    """``public_dict()`` output with its channel masked for any reader of the API."""
    return {**doc, "channel": _mask_channel(dict(doc.get("channel") or {}))}
