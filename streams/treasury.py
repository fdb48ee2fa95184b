"""The treasury book: holdings joined to prices in event time, and what a late holding does.

Pure: the stream's treasury agent and ``cpwatch backtest`` both drive one ``TreasuryBook``, so
both give the same alerts for the same order of arrivals.

**As of.** A holdings row says what a holder held from its ``as_of`` (midnight UTC for a date)
until the holder's next row. A price at time t is evaluated with each holder's row of the
latest ``as_of <= t``.

**Late holding.** A row is late when it arrives after a price at or after its ``as_of`` was
already evaluated without it. It is counted and logged, and it:

- joins the timeline under its own date, so every later price sees the row in force then;
- applies from the next price on, and never rewrites an alert already sent;
- re-bases the holder's rules if it changed the row in force at the last evaluated time: at
  the next price each of those rules starts afresh, as for a new holder (a level or cost rule
  takes its side, a drawdown its peak, a move rule its first reference), so no alert ever
  compares a value built on the old row with one built on the new. A late row that only fills
  in older history (a newer row is in force) changes nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cpwatch.records import HoldingUpdate
from streams.alerts import Alert
from streams.holdings import HoldingsTimeline
from streams.rules import DEFAULT_SYMBOL, RuleEngine


@dataclass(frozen=True)
class Applied:
    """What one ``apply_holdings`` call did."""

    changed: list[HoldingUpdate] = field(default_factory=list)  # new or corrected rows
    late: list[HoldingUpdate] = field(default_factory=list)  # of those, the late ones
    rebased: list[str] = field(default_factory=list)  # holders whose rules start afresh


class TreasuryBook:
    """Holdings timeline and rule engine of one asset symbol (holdings are BTC)."""

    def __init__(
        self,
        engine: RuleEngine,
        timeline: HoldingsTimeline | None = None,
        symbol: str = DEFAULT_SYMBOL,
    ) -> None:
        self.engine = engine
        self.timeline = timeline if timeline is not None else HoldingsTimeline()
        self.symbol = symbol
        self.late_total = 0

    def last_evaluated(self) -> datetime | None:
        t = self.engine.last_time(self.symbol)
        return None if t is None else datetime.fromtimestamp(t, UTC)

    def apply_holdings(self, updates: Iterable[HoldingUpdate]) -> Applied:
        """Add rows in arrival order. Rows of one disclosure (holder and ``as_of``) collapse to
        the last one first, so a replay of a topic applies each disclosure's final row once."""
        last: dict[str, HoldingUpdate] = {}
        for u in updates:
            last.pop(u.key, None)  # keep arrival order of the final rows
            last[u.key] = u
        now = self.last_evaluated()
        before = {
            u.holder: self.timeline.at(u.holder, now) for u in last.values() if now is not None
        }
        out = Applied()
        for u in last.values():
            if not self.timeline.add(u):
                continue
            out.changed.append(u)
            if now is not None and u.as_of <= now:
                out.late.append(u)
        for holder in sorted({u.holder for u in out.late}):
            if now is not None and self.timeline.at(holder, now) != before[holder]:
                self.engine.rebase(holder)
                out.rebased.append(holder)
        self.late_total += len(out.late)
        return out

    def on_price(self, ts: datetime, price: float) -> list[Alert]:
        """Evaluate a price with the holdings in force at ``ts`` (older prices are dropped)."""
        return self.engine.on_price(ts, price, self.timeline.in_force(ts), symbol=self.symbol)
