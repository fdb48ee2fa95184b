"""One batch of price ticks through the columnar reference price and treasury books.

What ``TreasuryProcessor.process`` does tick by tick (skip a repeat, ``ReferencePrice.update``,
then ``TreasuryBook.on_price`` at the symbol's clock for each tick that gave a price), for a
whole decoded batch at once. Holdings are applied by the caller (``book.apply_holdings``)
before; valuation documents are left to the caller, from the reference price and the symbol's
clock per tick that ``BatchResult`` carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from streams.alerts import Alert
from streams.columnar import ColumnarBook
from streams.columnar_refprice import ColumnarReferencePrice
from streams.columnar_ticks import TickColumns
from streams.refprice import VenueEvent


@dataclass(slots=True)
class BatchResult:
    alerts: list[Alert] = field(default_factory=list)
    events: list[tuple[int, VenueEvent]] = field(default_factory=list)  # (input row, event)
    priced: int = 0  # ticks that gave a reference price
    # per decoded tick (aligned with the input ``TickColumns``): the reference price it gave
    # (NaN where dropped or a repeat) and its symbol's clock then, in microseconds
    price: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    now_us: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


def process_ticks(
    ref: ColumnarReferencePrice, books: Mapping[str, ColumnarBook], cols: TickColumns
) -> BatchResult:
    """Symbols are independent, so each symbol's ticks go through at once; alerts come per
    symbol in first-seen order, each symbol's in event order."""
    out = BatchResult(price=np.full(len(cols), np.nan), now_us=np.zeros(len(cols), np.int64))
    for symbol, part in cols.by_symbol().items():
        r = ref.update_batch(symbol, part.venue, part.t_us, part.price)
        at = np.searchsorted(cols.row, part.row)  # rows are increasing: positions in ``cols``
        out.price[at], out.now_us[at] = r.price, r.now_us
        out.events.extend((int(part.row[i]), ev) for i, ev in r.events)
        ok = r.accepted
        out.priced += int(ok.sum())
        book = books.get(symbol)
        if book is not None and ok.any():
            out.alerts.extend(book.on_prices(r.now_us[ok], r.price[ok]))
    out.events.sort(key=lambda e: e[0])  # stable: a tick's events stay in venue order
    return out
