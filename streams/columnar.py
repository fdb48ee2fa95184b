"""Columnar treasury engine: a whole batch of prices through the rules with numpy.

Same semantics as the scalar reference (``RuleEngine`` driven by ``TreasuryBook``), checked by
tests/unit/test_columnar_equivalence.py: the same alerts (all fields, same order) and the same
``to_dict`` state, whatever the batch splits. Pure, no I/O.

- ``ColumnarEngine`` is a ``RuleEngine`` (same state, same ``rebase``/``to_dict``/``from_dict``)
  with ``on_batch``; its scalar ``on_price`` runs as a batch of one, so both paths share state.
- ``ColumnarBook`` is a ``TreasuryBook`` (same ``apply_holdings`` and late-holding rules) with
  ``on_prices``: each holder's row in force per price by one ``searchsorted`` over its
  ``as_of`` times, so holdings that take effect mid-batch are joined in event time.

Times are int64 microseconds since the epoch; the engine's float seconds are ``us / 1e6``,
bit-identical to ``datetime.timestamp()`` (both a correctly rounded division of exact values).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cpwatch.records import HoldingUpdate
from streams import columnar_rules as k
from streams.alerts import Alert, Direction
from streams.holdings import HoldingsTimeline
from streams.rules import (
    DEFAULT_SYMBOL,
    BelowCostRule,
    DrawdownRule,
    LevelRule,
    PctMoveRule,
    Rule,
    RuleEngine,
)
from streams.treasury import TreasuryBook

I64 = NDArray[np.int64]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_NAN = float("nan")


def to_us(ts: datetime) -> int:
    """Aware datetime -> integer microseconds since the epoch (exact)."""
    return (ts - EPOCH) // _US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def iso_utc_us(us: I64) -> list[str]:
    """``iso_utc(from_us(t))`` for each of ``us`` at once (strftime per time cost more than a
    holder's valuation): microseconds written only where set."""
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us").tolist()
    whole = (us % 1_000_000 == 0).tolist()
    return [t[:-7] + "Z" if w else t + "Z" for t, w in zip(text, whole, strict=True)]


@dataclass(slots=True)
class HolderRun:
    """One holder's rows and, per price of the batch, the index of the row in force (-1: none)."""

    holder: str
    rows: Sequence[HoldingUpdate]
    which: NDArray[np.intp]


class ColumnarEngine(RuleEngine):
    """``RuleEngine`` whose evaluations run over arrays; pct_move histories stay arrays here and
    become the scalar ``[[t, value], ...]`` lists only in ``to_dict``."""

    def __init__(self, rules: Sequence[Rule], state: dict[str, Any] | None = None) -> None:
        super().__init__(rules, state)
        self._hist: dict[tuple[str, str], k.MoveHist] = {}
        for r in self.rules:
            if isinstance(r, PctMoveRule):
                for holder, st in self._state[r.id].items():
                    self._hist[(r.id, holder)] = k.MoveHist.of(st.pop("hist", None))

    # ------------------------------------------------------------ state
    def rebase(self, holder: str) -> None:
        super().rebase(holder)
        for key in [key for key in self._hist if key[1] == holder]:
            del self._hist[key]

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for (rid, holder), hist in self._hist.items():
            out["rules"][rid][holder]["hist"] = hist.rows()
        return out

    # ------------------------------------------------------------ evaluation
    def on_batch(
        self, t_us: I64, price: NDArray[np.float64], runs: Sequence[HolderRun], symbol: str
    ) -> list[Alert]:
        """Prices in arrival order; a price older than the newest accepted one is dropped, as
        ``on_price`` does one at a time. ``runs`` in holder id order."""
        n = len(t_us)
        if n == 0:
            return []
        t = t_us / 1e6
        last = self._last_ts.get(symbol)
        before = np.empty(n)
        before[0] = -np.inf if last is None else last
        if n > 1:
            np.maximum.accumulate(t[:-1], out=before[1:])
            np.maximum(before[1:], before[0], out=before[1:])
        accepted = t >= before  # a dropped price never raises the max, so this is exact
        n_ok = int(np.count_nonzero(accepted))
        self.dropped += n - n_ok
        if n_ok == 0:
            return []
        self._last_ts[symbol] = float(t[accepted][-1])
        return self._evaluate_runs(t_us, t, price, runs, accepted, n_ok)

    def _evaluate(self, h: HoldingUpdate, ts: datetime, t: float, price: float) -> list[Alert]:
        # the scalar entry points (on_price, evaluate) as a batch of one, on the same state
        one = np.ones(1, np.bool_)
        run = HolderRun(h.holder, [h], np.zeros(1, np.intp))
        us = np.array([to_us(ts)], np.int64)
        return self._evaluate_runs(us, np.array([t]), np.array([price]), [run], one, 1)

    def _evaluate_runs(
        self,
        t_us: I64,
        t: NDArray[np.float64],
        price: NDArray[np.float64],
        runs: Sequence[HolderRun],
        accepted: NDArray[np.bool_],
        n_ok: int,
    ) -> list[Alert]:
        shared: dict[float, k.Idx] = {}  # pct_move in-batch searches, for holders seeing all
        hist_searches: dict[float, list[tuple[k.F64, k.F64, k.Idx]]] = {}
        found: list[tuple[k.Idx, int, int, k.Dirs, k.F64, HolderRun, k.Idx]] = []
        n = len(t)
        t_ok = t if n_ok == n else t[accepted]
        for rank, run in enumerate(runs):
            rules = self._rules_for(run.holder)
            if not rules:
                continue
            obs = _Obs.of(run, t, t_ok, price, accepted, n_ok)
            if obs is None:
                continue
            self.evaluations += len(obs.t) * len(rules)
            for pos, (rule, _, states) in enumerate(rules):
                st = states.get(run.holder)
                if st is None:
                    st = states[run.holder] = {}
                fired = self._rule(
                    rule, st, run, obs, shared if obs.everyone else None, hist_searches
                )
                if len(fired.at):
                    at = fired.at if obs.idx is None else obs.idx[fired.at]
                    rows = obs.row[fired.at]
                    found.append((at, rank, pos, fired.direction, fired.threshold, run, rows))
        return _alerts(found, t_us, price, self._by_holder)

    def _rule(
        self,
        rule: Rule,
        st: dict[str, Any],
        run: HolderRun,
        o: _Obs,
        shared: dict[float, k.Idx] | None,
        hist_searches: dict[float, list[tuple[k.F64, k.F64, k.Idx]]],
    ) -> k.Fired:
        up, down = rule.wants("up"), rule.wants("down")
        if isinstance(rule, LevelRule):
            return k.cross(st, o.v, rule.threshold_usd, rule.hysteresis, up, down)
        if isinstance(rule, BelowCostRule):
            costs = [r.avg_cost_usd for r in run.rows]
            if o.const >= 0:  # one row in force all along
                c0 = costs[o.const]
                if c0 is None:
                    return k.Fired.none()
                return k.cross(st, o.p, c0, rule.hysteresis, up, down)
            c = np.array([_NAN if x is None else x for x in costs])[o.row]
            has = np.flatnonzero(~np.isnan(c))  # rows without a cost are skipped, state kept
            if len(has) == len(c):
                return k.cross(st, o.p, c, rule.hysteresis, up, down)
            fired = k.cross(st, o.p[has], c[has], rule.hysteresis, up, down)
            return k.Fired(has[fired.at], fired.direction, fired.threshold)
        if isinstance(rule, DrawdownRule):
            return k.drawdown(st, o.v, rule.pct, up, down)
        assert isinstance(rule, PctMoveRule)
        w = rule.window.total_seconds()
        key = (rule.id, run.holder)
        hist = self._hist.get(key) or k.MoveHist.of(None)
        cached = None
        if shared is not None:
            cached = shared.get(w)
            if cached is None:
                cached = shared[w] = k.batch_index(o.t, w)
        positive = o.positive and (len(hist.v) == 0 or bool(hist.v.min() > 0))
        fired, self._hist[key] = k.pct_move(
            st,
            hist,
            o.t,
            o.v,
            w,
            rule.pct,
            up,
            down,
            cached,
            positive,
            hist_searches.setdefault(w, []),
        )
        return fired


@dataclass(slots=True)
class _Obs:
    """One holder's observations in a batch: accepted prices with a row in force."""

    idx: k.Idx | None  # positions in the batch; None: every position
    t: k.F64
    p: k.F64
    v: k.F64  # value: btc x price
    row: k.Idx  # the row in force at each
    const: int  # that row when it is the same all along, else -1
    everyone: bool  # observes every accepted price (shares time-only work with others)
    positive: bool  # every value > 0

    @staticmethod
    def of(
        run: HolderRun,
        t: k.F64,
        t_ok: k.F64,
        price: k.F64,
        accepted: NDArray[np.bool_],
        n_ok: int,
    ) -> _Obs | None:
        btc_rows = np.array([r.btc for r in run.rows], np.float64)
        which = run.which
        if n_ok == len(t) and which[0] >= 0:  # all accepted: which is sorted, so all in force
            idx, tt, p, row = None, t, price, which
        else:
            idx = np.flatnonzero(accepted & (which >= 0))
            if len(idx) == 0:
                return None
            tt, p, row = t[idx], price[idx], which[idx]
        const = int(row[0]) if row[0] == row[-1] else -1  # rows in force only move forward
        if const >= 0:
            v = btc_rows[const] * p
            positive = bool(btc_rows[const] > 0)
        else:
            v = btc_rows[row] * p
            positive = bool(btc_rows[row[0] : row[-1] + 1].min() > 0)
        everyone = idx is None or len(idx) == n_ok
        if everyone and idx is not None:
            tt = t_ok
        return _Obs(idx, tt, p, v, row, const, everyone, positive)


def _alerts(
    found: list[tuple[k.Idx, int, int, k.Dirs, k.F64, HolderRun, k.Idx]],
    t_us: I64,
    price: NDArray[np.float64],
    by_holder: dict[str, list[tuple[Rule, Any, Any]]],
) -> list[Alert]:
    """Alerts in the scalar order: price, then holder id, then rule file order."""
    if not found:
        return []
    tick = np.concatenate([f[0] for f in found])
    rank = np.concatenate([np.full(len(f[0]), f[1]) for f in found])
    pos = np.concatenate([np.full(len(f[0]), f[2]) for f in found])
    which = np.concatenate([np.full(len(f[0]), i) for i, f in enumerate(found)])
    j = np.concatenate([np.arange(len(f[0])) for f in found])
    order = np.lexsort((pos, rank, tick))
    plain = [(f[3].tolist(), f[4].tolist(), f[6].tolist()) for f in found]
    out: list[Alert] = []
    for i, ti, jj in zip(
        which[order].tolist(), tick[order].tolist(), j[order].tolist(), strict=True
    ):
        f = found[i]
        dirs, thresholds, rows = plain[i]
        run = f[5]
        h = run.rows[rows[jj]]
        rule = by_holder[run.holder][f[2]][0]
        d: Direction = "up" if dirs[jj] == k.UP else "down"
        pr = float(price[ti])
        out.append(
            Alert(
                rule.id, h.holder, from_us(int(t_us[ti])), d, h.btc * pr, thresholds[jj], pr, h.btc
            )
        )
    return out


class ColumnarBook(TreasuryBook):
    """``TreasuryBook`` with a batch entry point; holdings still arrive via ``apply_holdings``
    (between batches: split a batch where a holdings arrival falls in it)."""

    def __init__(
        self,
        engine: ColumnarEngine,
        timeline: HoldingsTimeline | None = None,
        symbol: str = DEFAULT_SYMBOL,
    ) -> None:
        super().__init__(engine, timeline, symbol)
        self.columnar = engine

    def runs(self, t_us: I64) -> list[HolderRun]:
        """Each holder's row in force at each time: the latest ``as_of <= t``."""
        out = []
        ordered = len(t_us) < 2 or bool(np.all(t_us[1:] >= t_us[:-1]))
        for holder in self.timeline.holders:
            rows = self.timeline.history(holder)
            if not rows:
                continue
            as_of = np.array([to_us(r.as_of) for r in rows], np.int64)
            if ordered:  # where each row takes over, then one fill
                edges = np.searchsorted(t_us, as_of, side="left")
                counts = np.diff(edges, prepend=0, append=len(t_us))
                which = np.repeat(np.arange(-1, len(rows), dtype=np.intp), counts)
            else:
                which = np.searchsorted(as_of, t_us, side="right").astype(np.intp) - 1
            out.append(HolderRun(holder, rows, which))
        return out

    def on_prices(self, t_us: I64, price: NDArray[np.float64]) -> list[Alert]:
        """A batch of (event time, price) in arrival order: ``on_price`` for each, at once."""
        t_us = np.ascontiguousarray(t_us, np.int64)
        price = np.ascontiguousarray(price, np.float64)
        return self.columnar.on_batch(t_us, price, self.runs(t_us), self.symbol)
