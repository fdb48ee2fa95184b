"""The worker's internal topics and the framing of what they carry.

These topics are created by Faust (``internal=True``) under the app id, so their names are
``<topic_prefix><app_id>-<name>``. The tick batch framing is the one private wire format in
cpwatch: route-ticks packs a symbol's ticks into one message, the treasury unpacks it.
"""

from __future__ import annotations

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
