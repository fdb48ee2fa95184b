"""Live WebSocket ticker loop: connect, subscribe, parse, reconnect with backoff and jitter.

Venue formats live in ``venues.py``; this module only moves bytes. A dropped or silent
connection is retried forever (until ``stop``), with capped exponential backoff and jitter so
many clients do not reconnect in lockstep. A venue *error* message is fatal: repeating a bad
subscription would only get the client banned.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape

from cpwatch.exceptions import RecordError
from cpwatch.records import PriceTick, utcnow
from producers.summary import Bad
from producers.venues import VenueAdapter, VenueError

OPEN_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 60.0  # no message at all (not even a heartbeat) for this long: reconnect
STOP_POLL_S = 0.5  # how often a blocked receive looks at the stop event
MAX_MESSAGE_BYTES = 1 << 20


@dataclass
class Backoff:
    """Capped exponential backoff with "equal jitter": half fixed, half random."""

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class LiveStats:
    connects: int = 0
    drops: int = 0
    messages: int = 0
    ticks: int = 0


async def _wait(stop: threading.Event, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(min(STOP_POLL_S, max(deadline - time.monotonic(), 0)))


async def run_live(
    venue: VenueAdapter,
    symbols: list[str],
    *,
    on_tick: Callable[[PriceTick], None],
    on_bad: Callable[[Bad], None],
    stop: threading.Event,
    url: str | None = None,
    backoff: Backoff | None = None,
    idle_timeout: float = IDLE_TIMEOUT_S,
    console: Console | None = None,
) -> LiveStats:
    """Stream ticks from ``venue`` until ``stop`` is set; return connection statistics."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, WebSocketException

    target = url or venue.default_url
    backoff = backoff or Backoff()
    stats = LiveStats()
    say = console.print if console else (lambda *a, **k: None)
    while not stop.is_set():
        try:
            async with connect(
                target,
                open_timeout=OPEN_TIMEOUT_S,
                close_timeout=5,
                ping_interval=20,
                ping_timeout=20,
                max_size=MAX_MESSAGE_BYTES,
            ) as ws:
                stats.connects += 1
                say(f"{venue.name}: connected to {target}")
                await ws.send(json.dumps(venue.subscribe(symbols)))
                last = time.monotonic()
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=STOP_POLL_S)
                    except TimeoutError:
                        if time.monotonic() - last > idle_timeout:
                            raise TimeoutError(f"no message for {idle_timeout:.0f}s") from None
                        continue
                    last = time.monotonic()
                    stats.messages += 1
                    where = f"{target}#msg{stats.messages}"
                    try:
                        ticks = venue.parse(json.loads(raw), utcnow())
                    except ValueError as exc:  # JSONDecodeError
                        on_bad(Bad(where, "bad message", f"invalid JSON: {exc}", str(raw)[:2000]))
                        continue
                    except RecordError as exc:
                        on_bad(Bad(where, "bad ticker", str(exc), str(raw)[:2000]))
                        continue
                    for tick in ticks:
                        on_tick(tick)
                        stats.ticks += 1
                    if ticks:
                        backoff.reset()  # a healthy stream: next drop starts from short waits
        except VenueError:
            raise
        except InvalidStatus as exc:
            status = exc.response.status_code
            if 400 <= status < 500 and status != 429:
                raise VenueError(f"{venue.name}: handshake refused with HTTP {status}") from exc
            reason = f"HTTP {status}"
        except (OSError, TimeoutError, WebSocketException) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        else:
            break  # stopped cleanly
        if stop.is_set():
            break
        stats.drops += 1
        delay = backoff.next()
        lost = f"{venue.name}: connection lost ({escape(reason)}); retry in {delay:.1f}s"
        say(f"[yellow]{lost}[/yellow]")
        await _wait(stop, delay)
    return stats
