"""Where each input partition must continue, so a skipped range is read again, not lost.

Faust treats a jump in offsets as a gap (compaction, transaction markers) and commits past it.
Under rebalances and restarts its fetch loop can deliver such jumps over messages no agent
saw (the kill -9 fault test caught ~1,900 ticks skipped that way). A stateful agent records,
with its state, the next offset it expects per partition; anything older was applied already,
anything newer means a hole, and the agent seeks back to fill it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cpwatch import metrics

log = logging.getLogger(__name__)

Verdict = Literal["apply", "seen", "hole"]
# A hole that survives this many seeks is real (transaction markers of a transactional producer).
# Generous: events fetched before a seek may still arrive for a few batches after it.
MAX_REWINDS = 100


@dataclass
class InputPositions:
    """Next expected offset per partition (``None``: no expectation, accept what comes)."""

    expected: dict[int, int] = field(default_factory=dict)
    _rewinds: dict[tuple[int, int], int] = field(default_factory=dict)
    holes_accepted: int = 0

    def check(self, partition: int, offset: int) -> Verdict:
        want = self.expected.get(partition)
        if want is None or offset == want:
            return "apply"
        if offset < want:
            return "seen"
        tries = self._rewinds.get((partition, want), 0)
        if tries >= MAX_REWINDS:  # the broker has nothing between: accept the hole
            self.holes_accepted += 1
            return "apply"
        self._rewinds[(partition, want)] = tries + 1
        return "hole"

    def applied(self, partition: int, offset: int) -> None:
        self.expected[partition] = offset + 1

    def reset(self, expected: dict[int, int] | None = None) -> None:
        self.expected = dict(expected or {})
        self._rewinds.clear()


async def admit(
    batch: Sequence[Any], positions: InputPositions, *, app: Any, stage: str, enabled: bool
) -> tuple[list[Any], set[int]]:
    """The events of a ``take_events`` batch still to apply, in order, each marked applied; and
    the partitions sought back (their later events come again after the seek)."""
    if not enabled:  # exactly_once: transaction markers make real holes
        return list(batch), set()
    fresh: list[Any] = []
    rewound: set[int] = set()
    for event in batch:
        part, offset = event.message.partition, event.message.offset
        if part in rewound:
            continue
        verdict = positions.check(part, offset)
        if verdict == "seen":
            continue  # already applied: a replay after a crash or a seek
        if verdict == "hole":
            rewound.add(part)
            want = positions.expected[part]
            log.warning(
                "%s: input %s jumped from %d to %d; seeking back to read it",
                stage,
                event.message.tp,
                want,
                offset,
            )
            metrics.INPUT_REWINDS.labels(stage).inc()
            await app.consumer.seek(event.message.tp, want)
            continue
        positions.applied(part, offset)
        fresh.append(event)
    return fresh, rewound
