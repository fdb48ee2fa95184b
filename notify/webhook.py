"""Signed webhook delivery over httpx, with SSRF checks, pinned addresses and retries.

Settings needed (see ``WebhookConfig``): connect/read timeouts, retry policy (max attempts,
backoff base and cap) and the SSRF allowlist. Each request carries::

    X-Cpwatch-Timestamp: <unix seconds>
    X-Cpwatch-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
    Idempotency-Key: <delivery id>            (the same on every retry)

Before every attempt the URL is re-checked (``notify.ssrf.check_url``) and the request goes to
the vetted IP (Host header and TLS SNI keep the name, so certificates still verify): a DNS
answer changed after the check cannot send us elsewhere. Redirects are never followed.
A 429's wait comes from ``Retry-After``, or from its JSON body for callers that pass a
``retry_hint`` (Discord, Telegram).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from cpwatch.records import dumps
from notify.delivery import Attempt, AttemptHook, DeliveryResult, RetryPolicy, timed, with_retries
from notify.ssrf import Allowlist, Resolver, UnsafeUrlError, check_url

SIGNATURE_HEADER = "X-Cpwatch-Signature"
TIMESTAMP_HEADER = "X-Cpwatch-Timestamp"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))
MAX_RETRY_AFTER_S = 300.0
MAX_HINT_BYTES = 4096
# A 429 body -> seconds to wait, for services that say so in JSON (Discord, Telegram).
RetryHint = Callable[[bytes], float | None]


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    allowlist: tuple[str, ...] = ()  # CIDRs or host names exempt from the SSRF guard
    user_agent: str = "cpwatch-webhook/1"


def _key(secret: SecretStr | str | bytes) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: SecretStr | str | bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``b"<timestamp>." + body``."""
    mac = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: SecretStr | str | bytes,
    timestamp: str | int,
    body: bytes,
    header: str,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """Receiver side: signature matches (constant-time) and the timestamp is fresh."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False  # a captured request replayed later is refused
    return hmac.compare_digest(sign(secret, ts, body).encode(), header.strip().encode())


def endpoint_of(url: str) -> str:
    """Dispatcher endpoint key: ``host:port``, so one host's slowness stays its own."""
    u = httpx.URL(url)
    return f"{u.host}:{u.port or (443 if u.scheme == 'https' else 80)}"


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(resp.headers["retry-after"])))
    except (KeyError, ValueError):
        return None  # absent, or an HTTP date: fall back to our own backoff


async def _hinted_delay(resp: httpx.Response, hint: RetryHint) -> float | None:
    """The delay a 429 body asks for; at most ``MAX_HINT_BYTES`` are read, never decoded
    from gzip & co (a small compressed body could expand to a huge one)."""
    if resp.headers.get("content-encoding", "identity").lower() != "identity":
        return None
    head = bytearray()
    async for chunk in resp.aiter_raw():
        head += chunk
        if len(head) >= MAX_HINT_BYTES:
            return None  # not the short JSON we expect
    try:
        delay = hint(bytes(head))
    except (ValueError, TypeError, OverflowError):  # not the JSON the service documents
        return None
    return None if delay is None else min(MAX_RETRY_AFTER_S, max(0.0, delay))


class WebhookSender:
    """POSTs JSON bodies; one instance (one connection pool) serves every subscriber."""

    def __init__(
        self,
        config: WebhookConfig | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        resolver: Resolver | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or WebhookConfig()
        self._allow = Allowlist.parse(self.config.allowlist)
        self._resolver, self._sleep, self._rng = resolver, sleep, rng
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(
                self.config.read_timeout_s, connect=self.config.connect_timeout_s
            ),
            follow_redirects=False,
            trust_env=False,  # an env proxy would connect by name and undo the IP pinning
        )

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def send(
        self,
        url: str,
        body: dict[str, Any] | bytes,
        *,
        delivery_id: str,
        secret: SecretStr | str | None = None,
        on_attempt: AttemptHook | None = None,
        retry_hint: RetryHint | None = None,
    ) -> DeliveryResult:
        """Deliver with retries; ``secret=None`` sends unsigned (Slack incoming webhooks).
        ``retry_hint`` reads a 429 body's delay, preferred to the Retry-After header."""
        data = body if isinstance(body, bytes) else dumps(body)

        async def attempt(n: int) -> tuple[Attempt, float | None]:
            return await self._attempt(n, url, data, delivery_id, secret, retry_hint)

        return await with_retries(
            delivery_id,
            attempt,
            self.config.retry,
            on_attempt=on_attempt,
            sleep=self._sleep,
            rng=self._rng,
        )

    async def _attempt(
        self,
        n: int,
        url: str,
        data: bytes,
        delivery_id: str,
        secret: SecretStr | str | None,
        retry_hint: RetryHint | None = None,
    ) -> tuple[Attempt, float | None]:
        start = time.perf_counter()
        try:
            vetted = await check_url(url, self._allow, self._resolver)
            target = httpx.URL(url).copy_with(host=vetted.ips[0])
        except (UnsafeUrlError, httpx.InvalidURL) as exc:
            return Attempt(n, None, timed(start), f"refused: {exc}"), None
        except OSError as exc:
            return Attempt(n, None, timed(start), f"resolve: {exc}", retryable=True), None
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.config.user_agent,
            "Host": httpx.URL(url).netloc.decode("ascii").rpartition("@")[2],
            "Idempotency-Key": delivery_id,
        }
        if secret is not None:
            ts = int(time.time())  # fresh per attempt, so retries pass the receiver's tolerance
            headers[TIMESTAMP_HEADER] = str(ts)
            headers[SIGNATURE_HEADER] = sign(secret, ts, data)
        extensions = {"sni_hostname": vetted.host} if vetted.scheme == "https" else {}
        request = self._client.build_request(
            "POST", target, content=data, headers=headers, extensions=extensions
        )
        hinted: float | None = None
        try:
            # Streamed and never read (but for a bounded 429 hint): a hostile endpoint cannot
            # make us buffer a huge body.
            resp = await self._client.send(request, stream=True)
            try:
                if resp.status_code == 429 and retry_hint is not None:
                    hinted = await _hinted_delay(resp, retry_hint)
            finally:
                await resp.aclose()
        except httpx.TransportError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return Attempt(n, None, timed(start), error, retryable=True), None
        latency, status = timed(start), resp.status_code
        if 200 <= status < 300:
            return Attempt(n, status, latency), None
        retryable = status in RETRY_STATUS
        why = "redirect not followed" if 300 <= status < 400 else f"HTTP {status}"
        delay = hinted if hinted is not None else _retry_after(resp)
        return Attempt(n, status, latency, why, retryable=retryable), delay
