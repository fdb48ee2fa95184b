"""An agent's input positions kept in a Faust table: the input-position guard of
``runtime.positions`` wired once for every Faust agent that needs it (news, matching)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faust

from cpwatch.settings import Settings
from runtime.positions import InputPositions, admit
from runtime.range_reader import RangeReader


class PositionTable:
    """Admit a batch (reading in any skipped range), then ``save`` once its outputs are durable.

    Positions are reloaded from the table at the first batch and after a revocation
    (``revoked``). Only at-least-once mode checks them: transaction markers make real holes.
    """

    def __init__(self, app: faust.App, name: str, settings: Settings, stage: str) -> None:
        self.table = app.Table(
            name,
            default=None,
            partitions=settings.topic_partitions,
            key_type=bytes,
            use_partitioner=True,
        )
        self.positions = InputPositions()
        self.enabled = settings.processing_guarantee == "at_least_once"
        self.read = RangeReader(settings)
        self.stage = stage
        self._reload = True

    def revoked(self) -> None:
        self._reload = True

    async def admit(self, batch: Sequence[Any]) -> list[Any]:
        if self._reload:
            self.positions.reset({int(k): v for k, v in self.table.items() if v is not None})
            self._reload = False
        return await admit(
            batch, self.positions, read=self.read, stage=self.stage, enabled=self.enabled
        )

    def save(self, batch: Sequence[Any]) -> None:
        """Record the next offset of each partition of ``batch``: call after its outputs
        were acknowledged, so a saved position never claims work that could still be lost."""
        for part in {e.message.partition for e in batch}:
            if part in self.positions.expected:
                self.table[str(part).encode()] = self.positions.expected[part]
