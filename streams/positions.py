"""Where each input partition must continue, so a skipped range is read again, not lost.

Faust treats a jump in offsets as a gap (compaction, transaction markers) and commits past it.
Under rebalances and restarts its fetch loop can deliver such jumps over messages no agent
saw (the kill -9 fault test caught ~1,900 ticks skipped that way). A stateful agent records,
with its state, the next offset it expects per partition; anything older was applied already,
anything newer means a hole, and the agent seeks back to fill it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
