"""The holder stage without its engines: (holder slot state, price series) -> (state, outputs).

Holdings are BTC, so every holder is valued at one symbol's reference price. The symbol stage
(``TreasuryProcessor`` with ``holders_apart``) computes that price once and sends the series it
gave to every holder slot; each slot keeps the holdings and rule state of the holders that hash
to it (``holder_slot``), so holder valuations and rules spread over as many workers as there are
slots. A slot applies a series exactly as the one-stage processor would have applied the same
ticks (tests/unit/streams/test_holder_split.py): holdings first, then the prices, with the rule
engine's and the valuations' code of the one-stage path.

Prices are numbered per symbol, and a slot remembers the next number it expects, so a series
the symbol stage sends again after a crash (its state was saved after the send) changes nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cpwatch.records import HoldingUpdate
from cpwatch.state_versions import StateVersionError
from streams.columnar import ColumnarBook, ColumnarEngine, from_us, to_us
from streams.holdings import HoldingsTimeline
from streams.rules import Rule, RuleEngine
from streams.treasury import TreasuryBook
from streams.treasury_processor import (
    ASSET_SYMBOL,
    BatchOutput,
    Engine,
    PriceSeries,
    add_valuation,
    apply_holdings,
    value_series,
)

HOLDER_STATE_VERSION = 1


def holder_slot(holder: str, slots: int) -> int:
    """The slot (a partition of ``holder-prices``) that keeps ``holder``: stable across
    processes and releases, unlike ``hash``."""
    return zlib.crc32(holder.encode()) % slots


@dataclass
class HolderState:
    """The holdings and rule state of one slot's holders; one table record."""

    slot: int
    book: TreasuryBook
    seq: int = 0  # the number of the next price this slot expects
    price: float | None = None  # the reference price and clock after the last series
    as_of: datetime | None = None
    partition: int | None = None  # of holder-prices (the slot itself)
    next_offset: int | None = None  # the input offset this state expects next there
    synced: int = 0  # holdings-table rows read (in memory only, never saved)

    def to_record(self) -> dict[str, Any]:
        ref = None if self.price is None or self.as_of is None else [self.price, to_us(self.as_of)]
        return {
            "v": HOLDER_STATE_VERSION,
            "slot": self.slot,
            "holdings": self.book.timeline.to_dict(),
            "engine": self.book.engine.to_dict(),
            "seq": self.seq,
            "ref": ref,
            "input": [self.partition, self.next_offset] if self.partition is not None else None,
        }

    def untouched(self) -> bool:
        """Nothing applied yet: no price, no holder."""
        return self.seq == 0 and self.price is None and not self.book.timeline.holders


@dataclass
class Gap:
    """Prices the slot never got (its input lost them): counted and logged by the agent."""

    slot: int
    expected: int
    got: int


class HolderProcessor:
    """Pure holder-stage logic; holds no per-slot state itself."""

    def __init__(self, rules: Sequence[Rule], slots: int, engine: Engine = "columnar") -> None:
        if slots < 1:
            raise ValueError(f"holder slots must be at least 1, not {slots}")
        self.rules, self.slots, self.engine = tuple(rules), slots, engine

    def new_state(self, slot: int) -> HolderState:
        return self.from_record(slot, None)

    def from_record(self, slot: int, record: dict[str, Any] | None) -> HolderState:
        rec = record or {}
        version = int(rec.get("v", HOLDER_STATE_VERSION))
        if version > HOLDER_STATE_VERSION:
            raise StateVersionError(
                f"treasury-holders of slot {slot} is version {version}; this worker reads up "
                f"to {HOLDER_STATE_VERSION} (upgrade the worker)"
            )
        st = HolderState(slot, self._book(rec.get("holdings"), rec.get("engine")))
        st.seq = int(rec.get("seq", 0))
        st.price, st.as_of = _ref(rec.get("ref"))
        where = rec.get("input") or [None, None]
        st.partition, st.next_offset = where[0], where[1]
        return st

    def adopt(self, st: HolderState, handover: dict[str, Any]) -> bool:
        """Take this slot's holders from an older symbol record's holdings and rule state (sent
        once, before the first series); a slot that already applied anything keeps its own."""
        if not st.untouched():
            return False
        mine = self._mine
        holders = (handover.get("holdings") or {}).get("holders") or {}
        engine = dict(handover.get("engine") or {})
        engine["rules"] = {
            rid: {h: v for h, v in by_holder.items() if mine(h, st.slot)}
            for rid, by_holder in (engine.get("rules") or {}).items()
        }
        timeline = {"holders": {h: rows for h, rows in holders.items() if mine(h, st.slot)}}
        st.book = self._book(timeline, engine)
        st.price, st.as_of = _ref(handover.get("ref"))
        return True

    def process(
        self,
        st: HolderState,
        series: PriceSeries,
        holdings: Sequence[HoldingUpdate] = (),
        out: BatchOutput | None = None,
    ) -> Gap | None:
        """Holdings rows past ``st.synced`` (this slot's holders), then the series' prices not
        applied yet. Returns the gap when the series starts past the next expected price."""
        out = out if out is not None else BatchOutput()
        symbol, n = series.symbol, len(series.t_us)
        if st.synced < len(holdings):
            rows = [u for u in holdings[st.synced :] if self._mine(u.holder, st.slot)]
            apply_holdings(st.book, symbol, rows, st.price, st.as_of, out)
            st.synced = len(holdings)
        skip = st.seq - series.first
        if skip > n or (skip == n and n > 0):
            return None  # sent again after a crash of the symbol stage: applied already
        gap = Gap(st.slot, st.seq, series.first) if skip < 0 else None
        t_us, price = series.t_us[max(skip, 0) :], series.price[max(skip, 0) :]
        if len(t_us):
            self._prices(st, symbol, t_us, price, out)
        st.seq = series.first + n
        st.price, st.as_of = series.end_price, series.end_as_of
        return gap

    def _prices(
        self,
        st: HolderState,
        symbol: str,
        t_us: NDArray[np.int64],
        price: NDArray[np.float64],
        out: BatchOutput,
    ) -> None:
        """What ``TreasuryProcessor`` does with the holders for each price of the series."""
        book, previous = st.book, st.price
        if isinstance(book, ColumnarBook):
            out.alerts.extend(book.on_prices(t_us, price))
            value_series(book, symbol, t_us, price, previous, out)
            return
        for us, px in zip(t_us.tolist(), price.tolist(), strict=True):
            now = from_us(us)
            out.alerts.extend(book.on_price(now, px))
            if px != previous:
                for h in book.timeline.in_force(now):
                    add_valuation(out.valuations, h, symbol, now, px)
            previous = px

    def _mine(self, holder: str, slot: int) -> bool:
        return holder_slot(holder, self.slots) == slot

    def _book(self, holdings: dict[str, Any] | None, engine: dict[str, Any] | None) -> TreasuryBook:
        timeline = HoldingsTimeline.from_dict(holdings) if holdings else None
        if self.engine == "columnar":
            return ColumnarBook(ColumnarEngine(self.rules, engine), timeline, ASSET_SYMBOL)
        return TreasuryBook(RuleEngine(self.rules, engine), timeline, ASSET_SYMBOL)


def _ref(raw: Any) -> tuple[float | None, datetime | None]:
    if not raw:
        return None, None
    return float(raw[0]), from_us(int(raw[1]))
