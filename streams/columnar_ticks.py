"""Price ticks (JSON, one per line) decoded once per batch into columns.

A typed msgspec decoder reads the usual batch straight into small structs (no dict per line);
a batch it refuses is parsed by orjson into dicts and checked column by column. Fields become
numpy columns and are validated with vectorised checks. The fast paths accept only the
canonical spelling the producers and route-ticks write (``PriceTick.to_bytes``: a number
price, ``...Z`` timestamp); any row they do not accept is handed to ``PriceTick.parse``, the
reference validator, which either accepts it (another valid spelling) or names the field. So a
row is valid here exactly when it is valid for the scalar path, and a bad row comes back with
its index and reason for the dead letter.

route-ticks decodes each poll here once and forwards the valid ticks as binary columns
(``to_frame``, cpwatch/internal_topics.py); the treasury reads them back with ``from_frame``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson
from numpy.typing import NDArray

from cpwatch.exceptions import RecordError
from cpwatch.internal_topics import TickColumnsFrame
from cpwatch.records import PriceTick
from streams.columnar import from_us, to_us

# hours, minutes and seconds in range here; numpy checks the calendar date
_CANON = r"[1-9]\d{3}-\d\d-\d\dT([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?Z"
_CANON_TS = re.compile(_CANON, re.ASCII)  # ASCII digits only, as the byte check below
_FIELDS = ("venue", "symbol", "price", "ts")
_CANON_TS_LINES = re.compile(f"(?:{_CANON}\n)*{_CANON}", re.ASCII)  # newline-joined stamps
# A whole-second stamp, the producers' spelling, as bytes: where digits go, and the separators
_STAMP = np.frombuffer(b"0000-00-00T00:00:00Z", np.uint8)
_DIGIT = _STAMP == ord("0")
_SKEW = timedelta(minutes=5)  # the TickTime limit of cpwatch.records
_US_RANGE = (to_us(datetime.min.replace(tzinfo=UTC)), to_us(datetime.max.replace(tzinfo=UTC)))


# venue, symbol and price columns, and the stamps without their Z (str or ASCII bytes)
Columns = tuple[list[Any], list[Any], list[Any], NDArray[Any]]


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

    @classmethod
    def concat(cls, parts: Sequence[TickColumns], sizes: Sequence[int]) -> TickColumns:
        """Consecutive batches as one; ``sizes`` are their input lengths, so each ``row`` stays
        the input index, counted over all the inputs in turn."""
        starts = np.cumsum([0, *sizes[:-1]], dtype=np.intp)
        return cls(
            np.concatenate([p.row + at for p, at in zip(parts, starts.tolist(), strict=True)]),
            [v for p in parts for v in p.venue],
            [s for p in parts for s in p.symbol],
            np.concatenate([p.price for p in parts]),
            np.concatenate([p.t_us for p in parts]),
        )

    def tick(self, i: int) -> PriceTick:
        """Tick ``i`` as the ``PriceTick`` it was (validated already; size and seq not kept)."""
        return PriceTick.model_construct(
            venue=self.venue[i],
            symbol=self.symbol[i],
            price=float(self.price[i]),
            ts=from_us(int(self.t_us[i])),
        )

    def line(self, i: int) -> bytes:
        """Tick ``i`` as a JSON line, for a dead letter."""
        return self.tick(i).to_bytes()

    def by_symbol(self) -> dict[str, TickColumns]:
        """One ``TickColumns`` per symbol, each in input order (symbols are independent)."""
        if len(self.symbol) and len(set(self.symbol)) == 1:  # route-ticks' usual batch
            return {
                self.symbol[0]: TickColumns(
                    self.row, self.venue, self.symbol, self.price, self.t_us
                )
            }
        out: dict[str, list[int]] = {}
        for i, s in enumerate(self.symbol):
            out.setdefault(s, []).append(i)
        return {s: self.take(np.asarray(ix, np.intp)) for s, ix in out.items()}


class _Tick(msgspec.Struct):
    """A tick as the fast path takes it; unknown fields are ignored, as ``PriceTick`` does."""

    venue: str
    symbol: str
    price: float  # an int is read as a float, as pydantic does; a bool is refused
    ts: str
    size: float | None = None
    seq: Annotated[int, msgspec.Meta(ge=0)] = 0
    schema_version: Literal[1] = 1


_decode_tick = msgspec.json.Decoder(_Tick).decode
_tick_fields = tuple(attrgetter(k) for k in _FIELDS)
_tick_size = attrgetter("size")


def _typed(lines: Sequence[bytes]) -> Columns | None:
    """The venue, symbol, price and ts columns when every line is a canonical tick; ``None``
    sends the batch to the dict path, which finds the rows to hand on."""
    try:
        ticks = list(map(_decode_tick, lines))
    except (msgspec.DecodeError, TypeError):  # also its ValidationError; TypeError: a null value
        return None
    columns = [list(map(get, ticks)) for get in _tick_fields]
    if not _sizes_ok([x for x in map(_tick_size, ticks) if x is not None]):
        return None
    return _canonical_columns(*columns)


def _sizes_ok(given: list[float]) -> bool:
    """The sizes present (``None`` left out) are finite and not negative, as ``_size_ok``
    requires of each; both fast paths check them so."""
    if not given:
        return True
    sizes = np.array(given, np.float64)
    return bool(np.all(np.isfinite(sizes) & (sizes >= 0)))


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


def _types(xs: Iterable[Any]) -> set[type]:
    return set(map(type, xs))


def _rows_ok(
    docs: list[Any], venue: list[Any], symbol: list[Any], price: list[Any], ts: list[Any]
) -> NDArray[np.bool_]:
    """Per row: does the fast path accept it (the price's value aside)."""
    return np.array(
        [
            type(d) is dict
            and _str_ok(v, 64)
            and _str_ok(s, 32)
            and type(p) is float  # ints (and bools) go to the reference path
            and type(t) is str
            and _CANON_TS.fullmatch(t) is not None
            and _size_ok(d.get("size"))
            and type(d.get("seq", 0)) is int
            and d.get("seq", 0) >= 0
            and d.get("schema_version", 1) == 1
            for d, v, s, p, t in zip(docs, venue, symbol, price, ts, strict=True)
        ],
        dtype=np.bool_,
    )


def _canonical_columns(
    venue: list[Any], symbol: list[Any], price: list[Any], ts: list[Any]
) -> Columns | None:
    """Both fast paths' checks of the string columns: names in bounds and unpadded, every
    stamp canonical. Returns the columns with the stamps as an array without their Z."""
    if not all(_str_ok(v, 64) for v in set(venue)) or not all(_str_ok(s, 32) for s in set(symbol)):
        return None
    stamps = _naive_stamps(ts)
    return None if stamps is None else (venue, symbol, price, stamps)


def _naive_stamps(ts: list[str]) -> NDArray[Any] | None:
    """The stamps without their Z when every one is canonical (``_CANON``), else ``None``.
    Whole-second stamps, the usual column, are checked as a byte matrix and parsed from bytes
    (about 65 ns a stamp where the joined regular-expression match and the ``str`` parse took
    330); other lengths are matched as one joined string."""
    if ts and set(map(len, ts)) == {len(_STAMP)}:
        try:
            raw = np.array(ts, dtype=f"S{len(_STAMP)}")
        except UnicodeEncodeError:
            return None
        m = raw.view(np.uint8).reshape(-1, len(_STAMP))
        d = m[:, _DIGIT].astype(np.int16) - ord("0")  # year, month, day, hour, minute, second
        ok = (
            bool(((d >= 0) & (d <= 9)).all())
            and bool((m[:, ~_DIGIT] == _STAMP[~_DIGIT]).all())
            and bool((d[:, 0] >= 1).all())  # [1-9]\d{3}
            and bool((d[:, 8] * 10 + d[:, 9] <= 23).all())  # hour
            and bool((d[:, 10] <= 5).all() & (d[:, 12] <= 5).all())  # minute, second
        )
        return raw.astype(f"S{len(_STAMP) - 1}") if ok else None  # the Z cut off
    joined = "\n".join(ts)
    if joined.count("\n") == len(ts) - 1 and _CANON_TS_LINES.fullmatch(joined) is not None:
        return np.array([t[:-1] for t in ts])
    return None


def _canonical(docs: list[Any]) -> Columns | None:
    """The venue, symbol, price and ts columns when every row passes the fast path's checks
    (``_rows_ok``), checked a column at a time: C loops rather than Python code per row. The
    usual batch; any other goes row by row."""
    if not docs or _types(docs) != {dict}:
        return None
    # column by column (no tuple per row: those are garbage-collector work, dicts of plain
    # values are not tracked), with the defaults ``_rows_ok`` gives absent fields
    columns: list[list[Any]] = [list(map(dict.get, docs, repeat(k))) for k in _FIELDS]
    venue, symbol, price, ts = columns
    size = list(map(dict.get, docs, repeat("size")))
    seq = list(map(dict.get, docs, repeat("seq"), repeat(0)))
    version = list(map(dict.get, docs, repeat("schema_version"), repeat(1)))
    if _types(venue) != {str} or _types(symbol) != {str} or _types(price) != {float}:
        return None
    if _types(ts) != {str}:
        return None
    size_types = _types(size)
    if not size_types <= {type(None), float}:
        return None
    if float in size_types and not _sizes_ok([x for x in size if x is not None]):
        return None
    if _types(seq) != {int} or min(seq) < 0 or _types(version) - {int, bool, float}:
        return None
    if set(version) != {1}:  # as ``v == 1`` per row
        return None
    return _canonical_columns(venue, symbol, price, ts)


def _parse_stamps(stamps: NDArray[Any], ok: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Naive ISO stamps (the Z stripped; ``str`` or ASCII bytes) -> microseconds; an
    impossible date clears ``ok``."""
    if not len(stamps):
        return np.zeros(0, np.int64)
    try:
        return np.asarray(stamps.astype("datetime64[us]"), np.int64)
    except ValueError:
        out = np.zeros(len(stamps), np.int64)
        for i, s in enumerate(stamps.tolist()):
            try:
                text = s.decode() if isinstance(s, bytes) else s
                out[i] = np.datetime64(text, "us").astype(np.int64)
            except ValueError:
                ok[i] = False
        return out


def decode_ticks(lines: Sequence[bytes], now: datetime | None = None) -> TickColumns:
    """Decode and validate a batch; invalid rows are left out and listed in ``bad``.
    ``now`` (tests) is the wall clock of the fast path's future check; rows it refuses go to
    ``PriceTick.parse``, which always uses the real clock."""
    canonical = _typed(lines)
    docs: list[Any] = []
    if canonical is None:
        docs = _docs(lines)
        canonical = _canonical(docs)
    if canonical is not None:
        venue, symbol, price_raw, stamps = canonical
        ok = np.ones(len(lines), np.bool_)
        price = np.array(price_raw, np.float64)
    else:
        get: list[dict[str, Any]] = [d if type(d) is dict else {} for d in docs]
        venue = [d.get("venue") for d in get]
        symbol = [d.get("symbol") for d in get]
        price_raw = [d.get("price") for d in get]
        ts_raw: list[Any] = [d.get("ts") for d in get]
        ok = _rows_ok(docs, venue, symbol, price_raw, ts_raw)
        price = np.array([p if k else 1.0 for p, k in zip(price_raw, ok, strict=True)], np.float64)
        stamps = np.array([t[:-1] if k else "1970-01-01" for t, k in zip(ts_raw, ok, strict=True)])
    ok &= np.isfinite(price) & (price > 0)
    t_us = _parse_stamps(stamps, ok)
    limit = to_us((now or datetime.now(UTC)) + _SKEW)
    ok &= t_us <= limit
    if ok.all():
        return TickColumns(np.arange(len(ok), dtype=np.intp), venue, symbol, price, t_us)
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


def to_frame(symbol: str, cols: TickColumns) -> TickColumnsFrame:
    """One symbol's ticks (all of ``cols``) as the binary frame route-ticks sends."""
    venues = list(dict.fromkeys(cols.venue))  # first-seen order
    if len(venues) == 1:
        idx = np.zeros(len(cols), "<u2")
    else:
        code = {v: i for i, v in enumerate(venues)}
        idx = np.array([code[v] for v in cols.venue], "<u2")
    return TickColumnsFrame(
        symbol,
        tuple(venues),
        idx.tobytes(),
        cols.t_us.astype("<i8", copy=False).tobytes(),
        cols.price.astype("<f8", copy=False).tobytes(),
    )


def from_frame(frame: TickColumnsFrame) -> TickColumns:
    """The frame's columns, checked as far as the engine relies on them: a venue index out of
    range, a price that is not finite and positive or a time outside the calendar is refused
    (``RecordError`` naming the field), not turned into a wrong price."""
    idx = np.frombuffer(frame.venue_idx, "<u2").astype(np.intp)
    t_us = np.frombuffer(frame.t_us, "<i8").astype(np.int64)
    price = np.frombuffer(frame.price, "<f8").astype(np.float64)
    if len(idx) and int(idx.max()) >= len(frame.venues):
        raise RecordError("tick columns frame: venue index out of range", field="venue")
    if not bool(np.all(np.isfinite(price) & (price > 0))):
        raise RecordError("tick columns frame: a price is not finite and positive", field="price")
    if len(t_us) and (int(t_us.min()) < _US_RANGE[0] or int(t_us.max()) > _US_RANGE[1]):
        raise RecordError("tick columns frame: a time is out of range", field="ts")
    names = frame.venues
    venue = [names[0]] * len(idx) if len(names) == 1 else [names[i] for i in idx.tolist()]
    return TickColumns(
        np.arange(len(idx), dtype=np.intp), venue, [frame.symbol] * len(idx), price, t_us
    )
