"""The treasury stage without its engines: (symbol state, tick batch) -> (state, outputs).

One ``SymbolState`` per symbol holds the reference price, the holdings timeline and the rule
state; its ``to_record``/``from_record`` are the Faust table's record (versioned). The agent in
``streams/treasury_agent.py`` only reads batches, calls ``TreasuryProcessor.process`` and sends
what it returns, so everything here is testable with plain lists.

Two engines give the same outputs and the same records (tests/unit/test_columnar_equivalence.py):
``columnar`` decodes a batch once and runs it through the numpy engine (streams/columnar*.py);
``scalar`` goes tick by tick and is the reference.

With ``holders_apart`` (what the stream runs) this is the symbol stage only: the reference price,
and for the asset symbol the series of prices it gave (``BatchOutput.prices``), which
``streams/holder_processor.py`` values per holder slot. Without it, one call does both, which is
what the split must equal (tests/unit/streams/test_holder_split.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from cpwatch.exceptions import RecordError
from cpwatch.records import HoldingUpdate, PriceTick
from cpwatch.state_versions import StateVersionError
from streams.alerts import Alert, iso_utc
from streams.columnar import ColumnarBook, ColumnarEngine, iso_utc_us, to_us
from streams.columnar_refprice import ColumnarReferencePrice
from streams.columnar_stream import process_ticks
from streams.columnar_ticks import TickColumns, decode_ticks
from streams.holdings import HoldingsTimeline, value_usd
from streams.refprice import ReferencePrice, VenueEvent
from streams.rules import Rule, RuleEngine
from streams.treasury import Applied, TreasuryBook

ASSET_SYMBOL = "BTC-USD"  # holdings are BTC: they are valued at this symbol's reference price
# 2: holdings and rule state moved to the holder stage; a version-1 asset record hands them over
STATE_VERSION = 2
Engine = Literal["columnar", "scalar"]
_MINUTE_US = 60_000_000


@dataclass
class SymbolState:
    """Everything the treasury keeps for one symbol; one table record."""

    ref: ReferencePrice
    book: TreasuryBook
    partition: int | None = None  # of the by-symbol topic
    next_offset: int | None = None  # the input offset this state expects next there
    synced: int = 0  # holdings-table rows applied to ``book`` (in memory only, never saved)
    published: int = 0  # prices handed to the holder stage so far: the next one's number
    # a version-1 record's holdings and rule state, still to hand to the holder stage
    handover: dict[str, Any] | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "ref": self.ref.to_dict(),
            "holdings": self.book.timeline.to_dict(),
            "engine": self.book.engine.to_dict(),
            "input": [self.partition, self.next_offset] if self.partition is not None else None,
            "published": self.published,
        }


@dataclass
class BatchOutput:
    """What one batch produced, for the agent to send, dead-letter, log and count."""

    alerts: list[Alert] = field(default_factory=list)
    valuations: dict[str, dict[str, Any]] = field(default_factory=dict)  # by document id
    rejected: list[tuple[bytes, str]] = field(default_factory=list)  # (tick, reason)
    # for each rejected tick, its index in the ``ticks`` of the ``process`` call that read it
    rejected_at: list[int] = field(default_factory=list)
    venue_events: list[VenueEvent] = field(default_factory=list)
    late: list[tuple[HoldingUpdate, bool]] = field(default_factory=list)  # (row, rebased)
    late_seen_until: datetime | None = None  # last price valued before the late rows came
    # holders apart: per process call of the asset symbol, the prices it gave (time in
    # microseconds, price) for the holder stage, numbered from ``first``
    prices: list[PriceSeries] = field(default_factory=list)


@dataclass(frozen=True)
class PriceSeries:
    """Consecutive reference prices of one symbol and where the symbol stood after them."""

    symbol: str
    first: int  # number of the first price (prices are numbered per symbol from 0)
    t_us: NDArray[np.int64]
    price: NDArray[np.float64]
    end_price: float | None
    end_as_of: datetime | None


class TreasuryProcessor:
    """Pure treasury logic shared by the stream and tests; holds no per-symbol state itself."""

    def __init__(
        self,
        rules: Sequence[Rule],
        staleness: timedelta,
        divergence_pct: float,
        engine: Engine = "columnar",
        holders_apart: bool = False,
    ) -> None:
        if engine not in ("columnar", "scalar"):
            raise ValueError(f"unknown treasury engine {engine!r} (columnar or scalar)")
        self.rules = tuple(rules)
        self.staleness = staleness
        self.divergence_pct = divergence_pct
        self.engine: Engine = engine
        self.holders_apart = holders_apart

    def new_state(self, symbol: str) -> SymbolState:
        return self.from_record(symbol, None)

    def from_record(self, symbol: str, record: dict[str, Any] | None) -> SymbolState:
        """Decode a table record; an unversioned one (before v1) has the same fields."""
        rec = record or {}
        version = int(rec.get("v", 0))
        if version > STATE_VERSION:
            raise StateVersionError(
                f"treasury-state of {symbol} is version {version}; this worker reads up to "
                f"{STATE_VERSION} (upgrade the worker)"
            )
        handover = None
        if self.holders_apart:  # the holder stage keeps holdings and rules
            if version < 2 and symbol == ASSET_SYMBOL and _holds_state(rec):
                handover = {"holdings": rec.get("holdings"), "engine": rec.get("engine")}
            rec = {k: v for k, v in rec.items() if k not in ("holdings", "engine")}
        timeline = HoldingsTimeline.from_dict(rec["holdings"]) if rec.get("holdings") else None
        where = rec.get("input") or [None, None]
        ref: ReferencePrice
        book: TreasuryBook
        # the same record either way: a table written by one engine is read by the other
        if self.engine == "columnar":
            ref = ColumnarReferencePrice(self.staleness, self.divergence_pct, state=rec.get("ref"))
            book = ColumnarBook(ColumnarEngine(self.rules, rec.get("engine")), timeline, symbol)
        else:
            ref = ReferencePrice(self.staleness, self.divergence_pct, state=rec.get("ref"))
            book = TreasuryBook(RuleEngine(self.rules, rec.get("engine")), timeline, symbol)
        st = SymbolState(ref=ref, book=book, partition=where[0], next_offset=where[1])
        st.published = int(rec.get("published", 0))
        if handover is not None:
            price, as_of = ref.price(symbol), ref.as_of(symbol)
            handover["ref"] = None if price is None or as_of is None else [price, to_us(as_of)]
            st.handover = handover
        return st

    def process(
        self,
        state: SymbolState,
        symbol: str,
        ticks: Sequence[bytes] | TickColumns,
        holdings: Sequence[HoldingUpdate] = (),
        out: BatchOutput | None = None,
    ) -> BatchOutput:
        """Apply one symbol's ticks in order: JSON lines, or columns already decoded (route-ticks'
        frames). ``holdings`` is the whole holdings table as read so far (append-only); rows
        past ``state.synced`` are applied before the first tick. Ticks older than the state's
        event time change nothing, so a replay is harmless."""
        out = out if out is not None else BatchOutput()
        if not ticks:
            return out
        apart = self.holders_apart and symbol == ASSET_SYMBOL
        if symbol == ASSET_SYMBOL and state.synced < len(holdings) and not self.holders_apart:
            self._apply_holdings(state, symbol, holdings, out)
        series = _Series(state.published) if apart else None
        if self.engine == "columnar":
            self._columnar(state, symbol, ticks, out, series)
        elif isinstance(ticks, TickColumns):
            self._scalar_columns(state, symbol, ticks, out, series)
        else:
            for i, body in enumerate(ticks):
                try:
                    tick = PriceTick.parse(body)
                    if tick.symbol != symbol:
                        raise _wrong_symbol(tick.symbol, symbol)
                    self._tick(state, symbol, tick, out, series)
                except (RecordError, ValueError, KeyError) as exc:
                    out.rejected.append((body, repr(exc)))
                    out.rejected_at.append(i)
        if series is not None:
            done = series.done(symbol, state.ref.price(symbol), state.ref.as_of(symbol))
            state.published += len(done.t_us)
            out.prices.append(done)
        return out

    def _scalar_columns(
        self,
        st: SymbolState,
        symbol: str,
        cols: TickColumns,
        out: BatchOutput,
        series: _Series | None,
    ) -> None:
        """The scalar path over decoded columns: each row as the ``PriceTick`` it was."""
        for i, row in enumerate(cols.row.tolist()):
            tick = cols.tick(i)
            try:
                if tick.symbol != symbol:
                    raise _wrong_symbol(tick.symbol, symbol)
                self._tick(st, symbol, tick, out, series)
            except (RecordError, ValueError, KeyError) as exc:
                out.rejected.append((cols.line(i), repr(exc)))
                out.rejected_at.append(row)

    def _columnar(
        self,
        st: SymbolState,
        symbol: str,
        ticks: Sequence[bytes] | TickColumns,
        out: BatchOutput,
        series: _Series | None,
    ) -> None:
        """``_tick`` for every tick of the batch at once; the same outputs in the same order."""
        ref, book = st.ref, st.book
        assert isinstance(ref, ColumnarReferencePrice) and isinstance(book, ColumnarBook)
        cols = given = ticks if isinstance(ticks, TickColumns) else decode_ticks(ticks)
        reasons = {b.index: repr(RecordError(b.reason, field=b.field)) for b in cols.bad}
        if any(s != symbol for s in cols.symbol):  # never from route-ticks; as the scalar path
            keep = [i for i, s in enumerate(cols.symbol) if s == symbol]
            for i, s in enumerate(cols.symbol):
                if s != symbol:
                    reasons[int(cols.row[i])] = repr(_wrong_symbol(s, symbol))
            cols = cols.take(np.asarray(keep, np.intp))
        out.rejected.extend((_body(ticks, given, i), reasons[i]) for i in sorted(reasons))
        out.rejected_at.extend(sorted(reasons))
        previous = ref.price(symbol)
        res = process_ticks(ref, {} if series is not None else {symbol: book}, cols)
        out.venue_events.extend(ev for _, ev in res.events)
        out.alerts.extend(res.alerts)
        priced = np.flatnonzero(~np.isnan(res.price))
        now_us, price = res.now_us[priced], res.price[priced]
        if series is not None:
            series.add_arrays(now_us, price)
        else:
            value_series(book, symbol, now_us, price, previous, out)

    def _tick(
        self,
        st: SymbolState,
        symbol: str,
        tick: PriceTick,
        out: BatchOutput,
        series: _Series | None = None,
    ) -> None:
        if st.ref.is_repeat(tick):
            return
        previous = st.ref.price(symbol)
        price, events = st.ref.update(tick)
        out.venue_events.extend(events)
        if price is None:
            return
        now = st.ref.as_of(symbol)
        assert now is not None  # a price implies at least one tick
        if series is not None:
            series.add(to_us(now), price)
            return
        out.alerts.extend(st.book.on_price(now, price))
        if price != previous:
            for h in st.book.timeline.in_force(now):
                add_valuation(out.valuations, h, symbol, now, price)

    def _apply_holdings(
        self, st: SymbolState, symbol: str, rows: Sequence[HoldingUpdate], out: BatchOutput
    ) -> None:
        st.synced = (
            apply_holdings(
                st.book, symbol, rows[st.synced :], st.ref.price(symbol), st.ref.as_of(symbol), out
            )
            + st.synced
        )


def apply_holdings(
    book: TreasuryBook,
    symbol: str,
    rows: Sequence[HoldingUpdate],
    price: float | None,
    as_of: datetime | None,
    out: BatchOutput,
) -> int:
    """New holdings rows into ``book``; a holder whose row changed is valued at the symbol's
    current price. Returns how many rows were read."""
    applied: Applied = book.apply_holdings(rows)
    if applied.late:
        out.late_seen_until = book.last_evaluated()
        out.late.extend((u, u.holder in applied.rebased) for u in applied.late)
    if price is not None and as_of is not None:
        for holder in {u.holder for u in applied.changed}:
            held = book.timeline.at(holder, as_of)
            if held is not None:
                add_valuation(out.valuations, held, symbol, as_of, price)
    return len(rows)


def value_series(
    book: TreasuryBook,
    symbol: str,
    now_us: NDArray[np.int64],
    price: NDArray[np.float64],
    previous: float | None,
    out: BatchOutput,
) -> None:
    """Valuations where the reference price changed (``previous``: the price before the
    series); per holder and minute only the last one is kept, so only each minute's last
    changed price is valued, in the order the scalar path first writes each document."""
    if not len(price):
        return
    assert isinstance(book, ColumnarBook)
    before = np.empty_like(price)
    before[0] = np.nan if previous is None else previous  # NaN: any price is a change
    before[1:] = price[:-1]
    changed = np.flatnonzero(price != before)
    if not len(changed):
        return
    now_us, price = now_us[changed], price[changed]  # the clock never goes back
    minute = now_us // _MINUTE_US
    ends = np.flatnonzero(np.diff(minute, append=minute[-1] + 1))
    starts = np.concatenate(([0], ends[:-1] + 1))
    runs = book.runs(now_us)
    if not runs:
        return  # a holder slot without holders (most of them) values nothing
    # Per holder: the first price it is in force at, and its row at each minute's last price;
    # read out of the arrays once per series. Only minutes some holder is in force at are
    # spelled out.
    enters = [int(np.searchsorted(run.which, 0, side="left")) for run in runs]
    at_ends = [run.which[ends] for run in runs]
    valued = np.flatnonzero(np.any(np.stack(at_ends) >= 0, axis=0))
    if not len(valued):
        return
    rows_at = [w[valued].tolist() for w in at_ends]
    stamps = iso_utc_us(now_us[ends[valued]])
    last_px = price[ends[valued]].tolist()
    for i, lo in enumerate(starts[valued].tolist()):
        # a holder in force at some price of the minute is in force at its last one; the
        # scalar path writes holders in id order per price, from the first price each is in
        first: list[tuple[int, int, HoldingUpdate]] = []
        for rank, run in enumerate(runs):
            row = rows_at[rank][i]
            if row >= 0:
                first.append((max(lo, enters[rank]), rank, run.rows[row]))
        for _, _, h in sorted(first, key=lambda f: (f[0], f[1])):
            add_valuation_at(out.valuations, h, symbol, stamps[i], last_px[i])


class _Series:
    """The prices one ``process`` call of the asset symbol gave, for the holder stage."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.parts: list[tuple[NDArray[np.int64], NDArray[np.float64]]] = []
        self.t: list[int] = []
        self.p: list[float] = []

    def add(self, t_us: int, price: float) -> None:
        self.t.append(t_us)
        self.p.append(price)

    def add_arrays(self, t_us: NDArray[np.int64], price: NDArray[np.float64]) -> None:
        self.parts.append((t_us, price))

    def done(self, symbol: str, end_price: float | None, end_as_of: datetime | None) -> PriceSeries:
        parts = [*self.parts, (np.array(self.t, np.int64), np.array(self.p, np.float64))]
        t_us = np.concatenate([t for t, _ in parts]).astype(np.int64, copy=False)
        price = np.concatenate([p for _, p in parts]).astype(np.float64, copy=False)
        return PriceSeries(symbol, self.first, t_us, price, end_price, end_as_of)


def _holds_state(rec: dict[str, Any]) -> bool:
    """A record with holdings, rule state or a last evaluated price (what version 1 kept)."""
    holders = (rec.get("holdings") or {}).get("holders") or {}
    engine = rec.get("engine") or {}
    rules = engine.get("rules") or {}
    return bool(holders) or bool(engine.get("last_ts")) or any(bool(v) for v in rules.values())


def _body(ticks: Sequence[bytes] | TickColumns, cols: TickColumns, row: int) -> bytes:
    """Input tick ``row`` as bytes, for its dead letter (columns hold valid ticks only)."""
    if not isinstance(ticks, TickColumns):
        return ticks[row]
    at = int(np.searchsorted(cols.row, row))
    return cols.line(at) if at < len(cols) and cols.row[at] == row else b""


def _wrong_symbol(got: str, want: str) -> RecordError:
    return RecordError(f"price-tick: symbol {got!r} in a batch of {want!r}", field="symbol")


def add_valuation(
    out: dict[str, dict[str, Any]], h: HoldingUpdate, symbol: str, ts: datetime, price: float
) -> None:
    """Keep the latest valuation per holder and minute (its document id)."""
    add_valuation_at(out, h, symbol, iso_utc(ts), price)


def add_valuation_at(
    out: dict[str, dict[str, Any]], h: HoldingUpdate, symbol: str, stamp: str, price: float
) -> None:
    """``add_valuation`` with the time already spelled by ``iso_utc``."""
    doc_id = f"{h.holder}|{stamp[:16]}"
    out[doc_id] = {
        "id": doc_id,
        "holder": h.holder,
        "name": h.name or h.holder,
        "kind": h.kind,
        "symbol": symbol,
        "ts": stamp,
        "price": price,
        "btc": h.btc,
        "value_usd": value_usd(h, price),
    }
