"""The worker's internal topics and the framing of what they carry.

These topics are created by Faust (``internal=True``) under the app id, so their names are
``<topic_prefix><app_id>-<name>``. The tick batch framing is the one private wire format in
cpwatch: route-ticks packs a symbol's ticks into one message, the treasury unpacks it. Two frame
kinds, told apart by a leading tag: ``TickColumnsFrame`` (``C``, what route-ticks writes: the
ticks it validated, as binary columns, so the treasury parses no JSON) and ``TickBatch`` (``B``,
JSON lines, written by earlier workers and still read: messages may be in flight on upgrade).

``holder-prices`` carries the asset symbol's reference prices from the treasury's symbol stage to
its holder stage, the same series to every partition (one holder slot each): ``PriceSeriesFrame``
(``P``), or once, on upgrade from a state where one symbol record held every holder,
``HandoverFrame`` (``H``, that record's holdings and rule state as JSON).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cpwatch.exceptions import RecordError

if TYPE_CHECKING:
    from cpwatch.settings import Settings

STORY_INPUT = "story-input"  # policy events re-keyed for story clustering
VALUATION_INPUT = "valuation-input"  # tick batches re-keyed by symbol
LIFECYCLE_INPUT = "lifecycle-input"  # subscription matches re-keyed by fingerprint
HOLDER_PRICES = "holder-prices"  # the asset's reference prices, to every holder slot
INTERNAL: tuple[str, ...] = (STORY_INPUT, VALUATION_INPUT, LIFECYCLE_INPUT, HOLDER_PRICES)


def internal_topic(settings: Settings, name: str) -> str:
    """Full name of an internal topic (``name`` is one of ``INTERNAL``)."""
    if name not in INTERNAL:
        raise ValueError(f"not an internal topic: {name!r}")
    return f"{settings.topic_prefix}{settings.faust_app_id}-{name}"


_TICK_BATCH = b"B"  # a leading tag, so a future frame kind can never be misread as ticks
_TICK_COLUMNS = b"C"
_HEAD = struct.Struct("<HHI")  # symbol bytes, venue count, tick count
_NAME = struct.Struct("<H")  # bytes of one venue name


@dataclass(frozen=True, slots=True)
class TickBatch:
    """One symbol's ticks (each a compact JSON ``PriceTick``), in the order read."""

    ticks: tuple[bytes, ...]

    def encode(self) -> bytes:
        # Newline-separated: compact JSON never contains a raw newline.
        return _TICK_BATCH + b"\n".join(self.ticks)

    @classmethod
    def of(cls, ticks: Sequence[bytes]) -> TickBatch:
        return cls(tuple(ticks))

    @classmethod
    def decode(cls, raw: bytes | None) -> TickBatch:
        if not raw or raw[:1] != _TICK_BATCH:
            head = (raw or b"")[:1]
            raise RecordError(f"not a tick batch (frame tag {head!r})", field="frame")
        body = raw[1:]
        return cls(tuple(body.split(b"\n")) if body else ())


@dataclass(frozen=True, slots=True)
class TickColumnsFrame:
    """One symbol's validated ticks as columns: the venue names, then per tick the index of its
    venue (uint16), its time (int64 microseconds since the epoch) and price (float64), each
    column little-endian. The columns stay bytes here (the contract does not load numpy);
    ``streams/columnar_ticks.py`` turns them into arrays and checks their values."""

    symbol: str
    venues: tuple[str, ...]
    venue_idx: bytes
    t_us: bytes
    price: bytes

    def __len__(self) -> int:
        return len(self.t_us) // 8

    def encode(self) -> bytes:
        n = len(self)
        if len(self.venue_idx) != 2 * n or len(self.price) != 8 * n or len(self.t_us) != 8 * n:
            raise ValueError("tick columns of different lengths")
        sym = self.symbol.encode()
        parts = [_TICK_COLUMNS, _HEAD.pack(len(sym), len(self.venues), n), sym]
        for venue in self.venues:
            name = venue.encode()
            parts += (_NAME.pack(len(name)), name)
        parts += (self.venue_idx, self.t_us, self.price)
        return b"".join(parts)

    @classmethod
    def decode(cls, raw: bytes) -> TickColumnsFrame:
        """Check the frame's layout; raise ``RecordError`` naming the part that does not fit."""
        if raw[:1] != _TICK_COLUMNS:
            raise RecordError(f"not a tick columns frame (tag {raw[:1]!r})", field="frame")
        at = 1 + _HEAD.size
        if len(raw) < at:
            raise RecordError("tick columns frame: truncated header", field="frame")
        n_sym, n_venues, n = _HEAD.unpack_from(raw, 1)
        symbol = _text(raw[at : at + n_sym], "symbol")
        at += n_sym
        venues = []
        for _ in range(n_venues):
            if len(raw) < at + _NAME.size:
                raise RecordError("tick columns frame: truncated venue names", field="frame")
            (size,) = _NAME.unpack_from(raw, at)
            venues.append(_text(raw[at + _NAME.size : at + _NAME.size + size], "venue"))
            at += _NAME.size + size
        if len(raw) != at + 18 * n:
            raise RecordError(
                f"tick columns frame: {len(raw) - at} bytes of columns for {n} ticks",
                field="frame",
            )
        idx_end, t_end = at + 2 * n, at + 10 * n
        return cls(symbol, tuple(venues), raw[at:idx_end], raw[idx_end:t_end], raw[t_end:])


def _text(raw: bytes, what: str) -> str:
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise RecordError(f"tick columns frame: {what} is not UTF-8", field=what) from exc
    if not text:
        raise RecordError(f"tick columns frame: empty or truncated {what}", field=what)
    return text


def decode_tick_message(raw: bytes | None) -> TickBatch | TickColumnsFrame:
    """A ``valuation-input`` message, of either frame kind (see the module docstring)."""
    if raw and raw[:1] == _TICK_COLUMNS:
        return TickColumnsFrame.decode(raw)
    return TickBatch.decode(raw)


_PRICE_SERIES = b"P"
_HANDOVER = b"H"
# symbol bytes, price count, first price's sequence number, the reference price and the
# symbol's clock after the series (NaN and -1 when the symbol has none yet)
_SERIES_HEAD = struct.Struct("<HIQdq")


@dataclass(frozen=True, slots=True)
class PriceSeriesFrame:
    """Consecutive reference prices of one symbol: per price its time (int64 microseconds,
    the symbol's clock) and value (float64), little-endian. Prices are numbered from the
    symbol's first, so a receiver drops what a replay sends again. ``end_price``/``end_as_of_us``
    are the symbol's reference price and clock once the series was applied (a holding that
    changes later is valued at them)."""

    symbol: str
    seq: int
    t_us: bytes
    price: bytes
    end_price: float | None
    end_as_of_us: int | None

    def __len__(self) -> int:
        return len(self.t_us) // 8

    def encode(self) -> bytes:
        n = len(self)
        if len(self.price) != 8 * n or len(self.t_us) != 8 * n:
            raise ValueError("price series columns of different lengths")
        sym = self.symbol.encode()
        end_p = math.nan if self.end_price is None else self.end_price
        end_t = -1 if self.end_as_of_us is None else self.end_as_of_us
        head = _SERIES_HEAD.pack(len(sym), n, self.seq, end_p, end_t)
        return b"".join((_PRICE_SERIES, head, sym, self.t_us, self.price))

    @classmethod
    def decode(cls, raw: bytes) -> PriceSeriesFrame:
        at = 1 + _SERIES_HEAD.size
        if raw[:1] != _PRICE_SERIES or len(raw) < at:
            raise RecordError("price series frame: truncated header", field="frame")
        n_sym, n, seq, end_p, end_t = _SERIES_HEAD.unpack_from(raw, 1)
        symbol = _text(raw[at : at + n_sym], "symbol")
        at += n_sym
        if len(raw) != at + 16 * n:
            raise RecordError(
                f"price series frame: {len(raw) - at} bytes of columns for {n} prices",
                field="frame",
            )
        end_price = None if math.isnan(end_p) else end_p
        end_as_of = None if end_t < 0 else end_t
        return cls(symbol, seq, raw[at : at + 8 * n], raw[at + 8 * n :], end_price, end_as_of)


@dataclass(frozen=True, slots=True)
class HandoverFrame:
    """The holdings and rule state one symbol record kept for every holder (state before
    version 2 of ``treasury-state``), for the holder slots to take their holders' part of."""

    symbol: str
    state: dict[str, Any]

    def encode(self) -> bytes:
        return _HANDOVER + json.dumps({"symbol": self.symbol, "state": self.state}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> HandoverFrame:
        try:
            body = json.loads(raw[1:])
            return cls(str(body["symbol"]), dict(body["state"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordError(f"handover frame: {exc!r}", field="frame") from exc


def decode_holder_message(raw: bytes | None) -> PriceSeriesFrame | HandoverFrame:
    """A ``holder-prices`` message, of either frame kind (see the module docstring)."""
    tag = (raw or b"")[:1]
    if raw and tag == _PRICE_SERIES:
        return PriceSeriesFrame.decode(raw)
    if raw and tag == _HANDOVER:
        return HandoverFrame.decode(raw)
    raise RecordError(f"not a holder-prices frame (tag {tag!r})", field="frame")
