"""Price ticks (JSON, one per line) decoded once per batch into columns.

orjson parses each line; fields become numpy columns and are validated with
vectorised checks. The fast path accepts only the canonical spelling the producers and
route-ticks write (``PriceTick.to_bytes``: a number price, ``...Z`` timestamp); any row it does
not accept is handed to ``PriceTick.parse``, the reference validator, which either accepts it
(another valid spelling) or names the field. So a row is valid here exactly when it is valid
for the scalar path, and a bad row comes back with its index and reason for the dead letter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from cpwatch.exceptions import RecordError
from cpwatch.records import PriceTick
from streams.columnar import to_us

# hours, minutes and seconds in range here; numpy checks the calendar date
_CANON_TS = re.compile(r"[1-9]\d{3}-\d\d-\d\dT([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?Z")
_SKEW = timedelta(minutes=5)  # the TickTime limit of cpwatch.records


@dataclass(frozen=True, slots=True)
class BadRow:
    index: int  # position in the batch
    field: str | None  # the offending field, when one is named
    reason: str


@dataclass(slots=True)
class TickColumns:
    """The valid ticks of a batch, in input order; ``row`` maps each back to its input index."""

    row: NDArray[np.intp]
    venue: list[str]
    symbol: list[str]
    price: NDArray[np.float64]
    t_us: NDArray[np.int64]
    bad: list[BadRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.row)

    def take(self, idx: NDArray[np.intp]) -> TickColumns:
        il = idx.tolist()
        return TickColumns(
            self.row[idx],
            [self.venue[i] for i in il],
            [self.symbol[i] for i in il],
            self.price[idx],
            self.t_us[idx],
        )

    def by_symbol(self) -> dict[str, TickColumns]:
        """One ``TickColumns`` per symbol, each in input order (symbols are independent)."""
        out: dict[str, list[int]] = {}
        for i, s in enumerate(self.symbol):
            out.setdefault(s, []).append(i)
        return {s: self.take(np.asarray(ix, np.intp)) for s, ix in out.items()}


def _load(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None  # PriceTick.parse reports it


def _docs(lines: Sequence[bytes]) -> list[Any]:
    # Line by line, not as one joined array: there, two invalid lines such as '{tick},[0' and
    # '1]' parse as two values, the first a valid tick, and route-ticks forwards lines as-is.
    try:
        return list(map(orjson.loads, lines))  # no Python frame per line
    except orjson.JSONDecodeError:
        return [_load(line) for line in lines]


def _str_ok(x: Any, limit: int) -> bool:
    return type(x) is str and 0 < len(x) <= limit and x == x.strip()


def _size_ok(x: Any) -> bool:
    return x is None or (type(x) is float and math.isfinite(x) and x >= 0)


def _parse_stamps(stamps: NDArray[np.str_], ok: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Naive ISO stamps (the Z stripped) -> microseconds; an impossible date clears ``ok``."""
    if not len(stamps):
        return np.zeros(0, np.int64)
    try:
        return stamps.astype("datetime64[us]").astype(np.int64)
    except ValueError:
        out = np.zeros(len(stamps), np.int64)
        for i, s in enumerate(stamps.tolist()):
            try:
                out[i] = np.datetime64(s, "us").astype(np.int64)
            except ValueError:
                ok[i] = False
        return out


def decode_ticks(lines: Sequence[bytes], now: datetime | None = None) -> TickColumns:
    """Decode and validate a batch; invalid rows are left out and listed in ``bad``.
    ``now`` (tests) is the wall clock of the fast path's future check; rows it refuses go to
    ``PriceTick.parse``, which always uses the real clock."""
    docs = _docs(lines)
    get: list[dict[str, Any]] = [d if type(d) is dict else {} for d in docs]
    venue: list[Any] = [d.get("venue") for d in get]
    symbol: list[Any] = [d.get("symbol") for d in get]
    price_raw: list[Any] = [d.get("price") for d in get]
    ts_raw: list[Any] = [d.get("ts") for d in get]
    ok = np.array(
        [
            type(d) is dict
            and _str_ok(v, 64)
            and _str_ok(s, 32)
            and type(p) is float  # ints (and bools) go to the reference path
            and type(ts) is str
            and _CANON_TS.fullmatch(ts) is not None
            and _size_ok(d.get("size"))
            and type(d.get("seq", 0)) is int
            and d.get("seq", 0) >= 0
            and d.get("schema_version", 1) == 1
            for d, v, s, p, ts in zip(docs, venue, symbol, price_raw, ts_raw, strict=True)
        ],
        dtype=np.bool_,
    )
    price = np.array([p if k else 1.0 for p, k in zip(price_raw, ok, strict=True)], np.float64)
    ok &= np.isfinite(price) & (price > 0)
    stamps = np.array([ts[:-1] if k else "1970-01-01" for ts, k in zip(ts_raw, ok, strict=True)])
    t_us = _parse_stamps(stamps, ok)
    limit = to_us((now or datetime.now(UTC)) + _SKEW)
    ok &= t_us <= limit
    # rows the fast path did not accept: the reference validator decides
    bad: list[BadRow] = []
    venue_out, symbol_out = list(venue), list(symbol)
    for i in np.flatnonzero(~ok).tolist():
        try:
            tick = PriceTick.parse(lines[i])
        except RecordError as exc:
            bad.append(BadRow(i, exc.field, str(exc)))
            continue
        ok[i] = True
        venue_out[i], symbol_out[i] = tick.venue, tick.symbol
        price[i], t_us[i] = tick.price, to_us(tick.ts)
    keep = np.flatnonzero(ok)
    cols = TickColumns(
        keep,
        [venue_out[i] for i in keep.tolist()],
        [symbol_out[i] for i in keep.tolist()],
        price[keep],
        t_us[keep],
        bad,
    )
    return cols
