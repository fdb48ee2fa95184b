"""REST polling fallback for Coinbase Exchange: ``GET /products/{id}/ticker`` on an interval.

Used when WebSockets are blocked. Only a new ``trade_id`` makes a tick (polling faster than the
market trades must not duplicate). 429, 5xx and connection errors are retried with backoff;
any other 4xx (unknown product) is fatal, since retrying cannot fix it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx

from cpwatch.exceptions import RecordError
from cpwatch.records import PriceTick, utcnow
from producers.live import Backoff
from producers.summary import Bad
from producers.venues import COINBASE_REST_URL, VenueError, coinbase_rest_tick, normalise_symbol

REST_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
POLL_INTERVAL_S = 2.0  # well under Coinbase's public rate limit for one product
USER_AGENT = "cpwatch/0.1 (price poller)"


def make_client(
    base_url: str | None = None, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    return httpx.Client(
        base_url=base_url or COINBASE_REST_URL,
        timeout=REST_TIMEOUT,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        transport=transport,
    )


def poll_coinbase(
    client: httpx.Client,
    symbol: str,
    *,
    on_tick: Callable[[PriceTick], None],
    on_bad: Callable[[Bad], None],
    stop: threading.Event,
    interval: float = POLL_INTERVAL_S,
    backoff: Backoff | None = None,
    max_polls: int | None = None,
) -> int:
    """Poll until ``stop`` (or ``max_polls``); return the number of ticks emitted."""
    product = normalise_symbol(symbol)
    path = f"/products/{product}/ticker"
    backoff = backoff or Backoff(base=interval, cap=60.0)
    last_trade: int | None = None
    emitted = polls = 0
    while not stop.is_set() and (max_polls is None or polls < max_polls):
        polls += 1
        wait = interval
        where = f"{client.base_url}{path}#poll{polls}"
        try:
            resp = client.get(path)
            if resp.status_code == 429 or resp.status_code >= 500:
                wait = backoff.next()
                on_bad(Bad(where, "venue busy", f"HTTP {resp.status_code}; retry in {wait:.1f}s"))
            elif resp.status_code >= 400:
                detail = resp.text[:200]
                raise VenueError(f"coinbase REST {path}: HTTP {resp.status_code}: {detail}")
            else:
                backoff.reset()
                tick = coinbase_rest_tick(resp.json(), product, utcnow())
                if tick.seq != last_trade:
                    last_trade = tick.seq
                    on_tick(tick)
                    emitted += 1
        except httpx.HTTPError as exc:
            wait = backoff.next()
            on_bad(Bad(where, "venue unreachable", f"{type(exc).__name__}: {exc}"))
        except (RecordError, ValueError) as exc:  # ValueError: body is not JSON
            on_bad(Bad(where, "bad ticker", str(exc)[:500]))
        if max_polls is not None and polls >= max_polls:
            break
        stop.wait(wait)
    return emitted
