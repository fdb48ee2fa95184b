"""Holdings timeline: which disclosed holding of each holder is in force at an event time.

Pure and in-memory. A holding applies from its ``as_of`` on until the next one; before a holder's
first ``as_of`` it holds nothing we know of, so no rule sees it.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cpwatch.records import HoldingUpdate

# Disclosures kept per holder. A bound, not a window: quarterly filings give ~4 a year, so this
# is centuries of history; past it the oldest rows go (event time only moves forward, so the
# oldest row is the first that can never be in force again).
MAX_PER_HOLDER = 1_000


def value_usd(holding: HoldingUpdate, price: float) -> float:
    return holding.btc * price


class HoldingsTimeline:
    """Per holder, the updates sorted by ``as_of``; ``at(holder, t)`` is the latest ``as_of <= t``.

    An update with the same holder and ``as_of`` as an existing one replaces it: the last one
    read wins, in file order for the backtest and in topic order for the stream (one key, one
    partition, so both see the same order), like the compacted ``holdings`` topic.

    State (``to_dict``): ``{"holders": {holder: [HoldingUpdate.to_dict(), ...]}}`` sorted by as_of.
    """

    def __init__(self, updates: Iterable[HoldingUpdate] = (), limit: int = MAX_PER_HOLDER) -> None:
        self._times: dict[str, list[datetime]] = {}
        self._updates: dict[str, list[HoldingUpdate]] = {}
        self.limit = limit
        for update in updates:
            self.add(update)

    def add(self, update: HoldingUpdate) -> bool:
        """Insert or replace; False when nothing changed (the same row again, or a row older
        than every kept one of a holder already at the limit)."""
        times = self._times.setdefault(update.holder, [])
        updates = self._updates.setdefault(update.holder, [])
        i = bisect_right(times, update.as_of)
        if i and times[i - 1] == update.as_of:
            if updates[i - 1] == update:
                return False
            updates[i - 1] = update
            return True
        if i == 0 and len(times) >= self.limit:
            return False
        insort(times, update.as_of)
        updates.insert(i, update)
        if len(times) > self.limit:
            del times[0], updates[0]
        return True

    def at(self, holder: str, ts: datetime) -> HoldingUpdate | None:
        """The update in force for ``holder`` at ``ts`` (latest ``as_of <= ts``), else None."""
        times = self._times.get(holder)
        if not times:
            return None
        i = bisect_right(times, ts)
        return self._updates[holder][i - 1] if i else None

    def in_force(self, ts: datetime) -> list[HoldingUpdate]:
        """Every holder's update in force at ``ts``, sorted by holder id (the evaluation order)."""
        found = (self.at(holder, ts) for holder in self.holders)
        return [h for h in found if h is not None]

    @property
    def holders(self) -> list[str]:
        return sorted(self._updates)

    def history(self, holder: str) -> list[HoldingUpdate]:
        return list(self._updates.get(holder, ()))

    def __len__(self) -> int:
        return sum(len(u) for u in self._updates.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "holders": {
                holder: [u.to_dict() for u in self._updates[holder]] for holder in self.holders
            }
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HoldingsTimeline:
        return cls(
            HoldingUpdate.parse(item)
            for items in data.get("holders", {}).values()
            for item in items
        )
