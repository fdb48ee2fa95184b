"""Reference price per symbol: the median of the venues' latest prices, in event time.

Pure: feed it ``PriceTick``s, get back the reference price and venue events. Its state is a plain
dict (``to_dict``/``from_dict``) so a Faust table can hold it.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cpwatch.records import PriceTick
from streams.alerts import iso_utc

VenueEventKind = Literal["stale", "diverging", "recovered"]
_OK = "ok"


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@dataclass(frozen=True, slots=True)
class VenueEvent:
    """A venue changed status: went stale, diverged from the median, or came back in line."""

    kind: VenueEventKind
    symbol: str
    venue: str
    ts: datetime  # event time at which the change was noticed (the symbol's clock)
    last_ts: datetime  # the venue's own last tick
    price: float  # the venue's last price
    reference: float | None  # the median at that moment (None if no fresh venue)
    deviation_pct: float | None  # venue vs median, when both are known

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "symbol": self.symbol,
            "venue": self.venue,
            "ts": iso_utc(self.ts),
            "last_ts": iso_utc(self.last_ts),
            "price": self.price,
            "reference": self.reference,
            "deviation_pct": self.deviation_pct,
        }


class ReferencePrice:
    """Median of fresh venues per symbol; stale = last tick older than ``staleness`` in event time.

    The symbol's clock is the newest tick ts seen for it (any venue), so a silent venue goes stale
    as soon as the others move on, not when the wall clock says so. Events fire on status changes
    only, so a dead venue is reported once, not on every tick.

    State (``to_dict``)::

        {"dropped": int,
         "symbols": {symbol: {"now": epoch_s,
                              "venues": {venue: {"ts": epoch_s, "price": float, "status": str}}}}}
    """

    def __init__(
        self,
        staleness: timedelta = timedelta(minutes=2),
        divergence_pct: float = 2.0,
        state: dict[str, Any] | None = None,
    ) -> None:
        if staleness <= timedelta(0):
            raise ValueError("staleness must be positive")
        if divergence_pct <= 0:
            raise ValueError("divergence_pct must be positive")
        self.staleness = staleness
        self.divergence_pct = divergence_pct
        data = copy.deepcopy(state) if state else {}
        self._symbols: dict[str, dict[str, Any]] = data.get("symbols", {})
        self.dropped: int = int(data.get("dropped", 0))

    def update(self, tick: PriceTick) -> tuple[float | None, list[VenueEvent]]:
        """Apply one tick. Returns (reference price or None, venue events).

        None means nothing to act on: the tick was older than its venue's last one (counted in
        ``dropped``). Otherwise at least the venue that set the symbol's clock is fresh.
        """
        t = tick.ts.timestamp()
        sym = self._symbols.setdefault(tick.symbol, {"now": t, "venues": {}})
        venues: dict[str, dict[str, Any]] = sym["venues"]
        last = venues.get(tick.venue)
        if last is not None and t < last["ts"]:
            self.dropped += 1
            return None, []
        if last is None:
            venues[tick.venue] = {"ts": t, "price": tick.price, "status": _OK}
        else:
            last["ts"], last["price"] = t, tick.price
        sym["now"] = max(sym["now"], t)
        return self._evaluate(tick.symbol, sym)

    def is_repeat(self, tick: PriceTick) -> bool:
        """The venue's last tick again (same time and price): a redelivery. Applying it would
        change no price, only add a duplicate point to the rules' windows."""
        last = self._symbols.get(tick.symbol, {}).get("venues", {}).get(tick.venue)
        if last is None:
            return False
        return bool(last["ts"] == tick.ts.timestamp() and last["price"] == tick.price)

    def _evaluate(self, symbol: str, sym: dict[str, Any]) -> tuple[float | None, list[VenueEvent]]:
        now, horizon = sym["now"], self.staleness.total_seconds()
        venues: dict[str, dict[str, Any]] = sym["venues"]
        fresh = {v: s for v, s in venues.items() if now - s["ts"] <= horizon}
        median = statistics.median(s["price"] for s in fresh.values()) if fresh else None
        events: list[VenueEvent] = []
        for name in sorted(venues):  # sorted: deterministic event order
            s = venues[name]
            dev = (s["price"] - median) / median * 100 if median else None
            bad: VenueEventKind | None = None
            if name not in fresh:
                bad = "stale"
            elif dev is not None and abs(dev) > self.divergence_pct:
                bad = "diverging"
            if (bad or _OK) != s["status"]:
                events.append(
                    VenueEvent(
                        bad or "recovered",
                        symbol,
                        name,
                        _dt(now),
                        _dt(s["ts"]),
                        s["price"],
                        median,
                        dev,
                    )
                )
                s["status"] = bad or _OK
        return median, events

    def as_of(self, symbol: str) -> datetime | None:
        """The symbol's event-time clock: feed this ts (not the tick's) to the rule engine."""
        sym = self._symbols.get(symbol)
        return _dt(sym["now"]) if sym else None

    def price(self, symbol: str) -> float | None:
        """The current reference price (median of fresh venues), without a new tick."""
        sym = self._symbols.get(symbol)
        if not sym:
            return None
        horizon = self.staleness.total_seconds()
        prices = [s["price"] for s in sym["venues"].values() if sym["now"] - s["ts"] <= horizon]
        return statistics.median(prices) if prices else None

    def to_dict(self) -> dict[str, Any]:
        return {"dropped": self.dropped, "symbols": copy.deepcopy(self._symbols)}

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, staleness: timedelta, divergence_pct: float
    ) -> ReferencePrice:
        return cls(staleness=staleness, divergence_pct=divergence_pct, state=data)
