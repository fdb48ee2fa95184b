"""The worker's internal topics and the framing of what they carry.

These topics are created by Faust (``internal=True``) under the app id, so their names are
``<topic_prefix><app_id>-<name>``. The tick batch framing is the one private wire format in
cpwatch: route-ticks packs a symbol's ticks into one message, the treasury unpacks it. Two frame
kinds, told apart by a leading tag: ``TickColumnsFrame`` (``C``, what route-ticks writes: the
ticks it validated, as binary columns, so the treasury parses no JSON) and ``TickBatch`` (``B``,
JSON lines, written by earlier workers and still read: messages may be in flight on upgrade).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cpwatch.exceptions import RecordError

if TYPE_CHECKING:
    from cpwatch.settings import Settings

STORY_INPUT = "story-input"  # policy events re-keyed for story clustering
VALUATION_INPUT = "valuation-input"  # tick batches re-keyed by symbol
LIFECYCLE_INPUT = "lifecycle-input"  # subscription matches re-keyed by fingerprint
INTERNAL: tuple[str, ...] = (STORY_INPUT, VALUATION_INPUT, LIFECYCLE_INPUT)


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
