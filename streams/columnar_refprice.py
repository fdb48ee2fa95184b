"""Reference price over a batch of one symbol's ticks, with numpy (same as ``ReferencePrice``).

Per accepted tick, every venue's latest (ts, price) is a forward fill of that venue's accepted
ticks, so the fresh set, the median and each venue's status are computed for all ticks at once
as (ticks x venues) matrices; events are the status changes. A tick older than its venue's
last one is dropped, exactly as the scalar ``update`` does, and a redelivered tick (the venue's
last time and price again) is skipped, as ``TreasuryProcessor`` does (``is_repeat``). Venues
are few (a handful per symbol): the matrices are narrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from streams.columnar import to_us
from streams.refprice import ReferencePrice, VenueEvent, VenueEventKind, _dt

_STATUS = ("ok", "stale", "diverging")
_CODE = {name: i for i, name in enumerate(_STATUS)}
_EVENT: tuple[VenueEventKind, ...] = ("recovered", "stale", "diverging")


@dataclass(slots=True)
class RefBatch:
    """Per input tick: the reference price (NaN where dropped or a repeat) and the symbol's
    clock in microseconds (the event time to value holdings at); venue events in order."""

    price: NDArray[np.float64]
    now_us: NDArray[np.int64]
    events: list[tuple[int, VenueEvent]]  # (input row, event)

    @property
    def accepted(self) -> NDArray[np.bool_]:
        return ~np.isnan(self.price)


class ColumnarReferencePrice(ReferencePrice):
    """``ReferencePrice`` (same state, same ``to_dict``) with a batch ``update_batch``."""

    def update_batch(
        self,
        symbol: str,
        venues: Sequence[str],
        t_us: NDArray[np.int64],
        price: NDArray[np.float64],
    ) -> RefBatch:
        """Ticks of one symbol in arrival order (``venues[i]`` the venue of tick i)."""
        n = len(t_us)
        out_price = np.full(n, np.nan)
        out_now = np.zeros(n, np.int64)
        if n == 0:
            return RefBatch(out_price, out_now, [])
        t = t_us / 1e6
        sym = self._symbols.setdefault(symbol, {"now": float(t[0]), "venues": {}})
        state = sym["venues"]
        names = sorted(set(state) | set(venues))  # sorted: the scalar event order
        col = {name: i for i, name in enumerate(names)}
        vcode = np.array([col[v] for v in venues], np.intp)
        width = len(names)
        accepted = np.ones(n, np.bool_)
        repeat = np.zeros(n, np.bool_)
        last_pos = np.empty((n, width), np.intp)  # per tick, each venue's last accepted tick
        ts0, price0 = np.full(width, -np.inf), np.full(width, np.nan)
        status0 = np.zeros(width, np.int8)
        for name, s in state.items():
            j = col[name]
            ts0[j], price0[j], status0[j] = s["ts"], s["price"], _CODE[s["status"]]
        arange = np.arange(n)
        for j in range(width):
            mine = np.flatnonzero(vcode == j)
            if len(mine):
                tv = t[mine]
                before = np.empty(len(mine))
                before[0] = ts0[j]
                np.maximum.accumulate(tv[:-1], out=before[1:])
                np.maximum(before[1:], ts0[j], out=before[1:])
                accepted[mine] = tv >= before
                # a redelivery (the venue's last ts and price again) is skipped, as
                # TreasuryProcessor does with ReferencePrice.is_repeat: no price, no event
                ok = mine[accepted[mine]]
                if len(ok):
                    prev_t, prev_p = np.empty(len(ok)), np.empty(len(ok))
                    prev_t[0], prev_p[0] = ts0[j], price0[j]
                    prev_t[1:], prev_p[1:] = t[ok[:-1]], price[ok[:-1]]
                    repeat[ok] = (t[ok] == prev_t) & (price[ok] == prev_p)
            pos = np.where((vcode == j) & accepted, arange, -1)
            np.maximum.accumulate(pos, out=pos)
            last_pos[:, j] = pos
        self.dropped += int(n - np.count_nonzero(accepted))
        rows = np.flatnonzero(accepted & ~repeat)  # a repeat changes no state: skip it
        if len(rows) == 0:
            return RefBatch(out_price, out_now, [])
        lp = last_pos[rows]
        seen = lp >= 0
        known = seen | ~np.isinf(ts0)
        ts_m = np.where(seen, t[np.maximum(lp, 0)], ts0)
        px_m = np.where(seen, price[np.maximum(lp, 0)], price0)
        now = np.maximum.accumulate(t[rows])
        np.maximum(now, sym["now"], out=now)
        now_us = np.maximum.accumulate(t_us[rows])  # the same clock in exact microseconds
        np.maximum(now_us, to_us(_dt(sym["now"])), out=now_us)
        fresh = known & ((now[:, None] - ts_m) <= self.staleness.total_seconds())
        med = _median(np.where(fresh, px_m, np.nan), fresh.sum(axis=1))
        with np.errstate(invalid="ignore"):
            dev = (px_m - med[:, None]) / med[:, None] * 100
        status = np.zeros(lp.shape, np.int8)
        status[np.abs(dev) > self.divergence_pct] = _CODE["diverging"]
        status[~fresh] = _CODE["stale"]
        status = np.where(known, status, np.int8(0)).astype(np.int8)  # new venues start "ok"
        prev = np.vstack((status0[None, :], status[:-1]))
        changed = known & (status != prev)
        events: list[tuple[int, VenueEvent]] = []
        for r, j in zip(*np.nonzero(changed), strict=True):
            ev = VenueEvent(
                _EVENT[int(status[r, j])],
                symbol,
                names[j],
                _dt(float(now[r])),
                _dt(float(ts_m[r, j])),
                float(px_m[r, j]),
                float(med[r]),
                float(dev[r, j]),
            )
            events.append((int(rows[r]), ev))
        # final state: the last accepted tick's view of every known venue
        sym["now"] = float(now[-1])
        for j, name in enumerate(names):
            if not known[-1, j]:
                continue
            s = state.setdefault(name, {})
            s["ts"], s["price"] = float(ts_m[-1, j]), float(px_m[-1, j])
            s["status"] = _STATUS[int(status[-1, j])]
        out_price[rows] = med
        out_now[rows] = now_us
        return RefBatch(out_price, out_now, events)


def _median(prices: NDArray[np.float64], count: NDArray[np.intp]) -> NDArray[np.float64]:
    """Row medians of the non-NaN entries, as ``statistics.median`` (mean of the middle two)."""
    s = np.sort(prices, axis=1)  # NaN sorts last
    r = np.arange(len(s))
    mid = count // 2
    odd = s[r, mid]
    even = (s[r, np.maximum(mid - 1, 0)] + s[r, mid]) / 2
    return np.where(count % 2 == 1, odd, even)
