"""Retry an Elasticsearch call while the cluster is unavailable, as the sinks do.

Connection errors, timeouts, 429 and 5xx are waited out with capped, jittered exponential
backoff, indefinitely: the caller's Kafka offsets stay uncommitted meanwhile, so nothing is
lost and the stage simply stops consuming. Any other error (a request Elasticsearch refuses
for good) is raised to the caller, which dead-letters.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from elasticsearch import ApiError, TransportError

log = logging.getLogger(__name__)

R = TypeVar("R")
CAP_S = 30.0


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, TransportError):  # connection refused, timeout, TLS
        return True
    return isinstance(exc, ApiError) and (exc.status_code == 429 or exc.status_code >= 500)


def backoff(attempt: int, rng: random.Random) -> float:
    """Half to all of ``min(cap, 0.5 * 2**attempt)``."""
    delay = min(CAP_S, 0.5 * 2 ** min(attempt, 6))
    return delay * (0.5 + rng.random() / 2)


async def retry_es(
    call: Callable[[], Awaitable[R]],
    what: str,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[BaseException], None] | None = None,
) -> R:
    rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            if not retryable(exc):
                raise
            attempt += 1
            delay = backoff(attempt, rng)
            if on_retry is not None:
                on_retry(exc)
            log.warning(
                "%s: elasticsearch unavailable (%r); retry %d in %.1fs", what, exc, attempt, delay
            )
            await sleep(delay)
