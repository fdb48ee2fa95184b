"""An agent's input positions kept in a Faust table: the input-position guard of
``runtime.positions`` wired once for every Faust agent that needs it (news, story clustering,
matching, alert routing, the alert tracker).

The row of input partition ``p`` must sit on changelog partition ``p``: Faust restores a
changelog partition on the worker that owns the input partition of the same number, and the
producer places a row by hashing its key. Keyed ``str(p)``, the row of news partition 0 landed
on changelog partition 4 of 8, so in a group of several workers the owner of partition 0 did not
restore its position (and one that later took partition 0 over could restore an old one, and
re-read from there). Rows are keyed ``"p~i"`` with the first ``i`` that hashes onto ``p``
(``row_key``); rows keyed ``"p"`` by older workers are still read, the new one preferred.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from itertools import count
from typing import Any

import faust
from aiokafka.partitioner import murmur2

from cpwatch import state_versions as sv
from cpwatch.settings import Settings
from runtime.nudge import NUDGE, watch_stalls
from runtime.positions import InputPositions, admit
from runtime.range_reader import GroupStart, RangeReader
from runtime.table_state import changelog_ready, read_record, stop_worker, versioned

KIND = "positions"  # cpwatch/state_versions.py: v0 a bare next offset, v1 {"v": 1, "offset"}


@cache
def row_key(partition: int, partitions: int) -> bytes:
    """The key of ``partition``'s row: one Kafka's default partitioner (murmur2 of the key,
    as aiokafka's producer computes it) places on that same changelog partition."""
    if partitions <= 1:
        return str(partition).encode()
    for i in count():
        key = f"{partition}~{i}".encode()
        if (murmur2(key) & 0x7FFFFFFF) % partitions == partition:
            return key
    raise AssertionError("unreachable")


class PositionTable:
    """Admit a batch (reading in any skipped range), then ``save`` once its outputs are durable.

    Positions are reloaded from the table at the first batch and after a revocation
    (``revoked``). Only at-least-once mode checks them: transaction markers make real holes.
    Rows of any older version are read; a newer one stops the worker (``runtime.table_state``).
    """

    def __init__(
        self,
        app: faust.App,
        name: str,
        settings: Settings,
        stage: str,
        partitions: int | None = None,
    ) -> None:
        """``partitions``: the input's (a changelog follows its stream); by default the count
        every cpwatch topic has."""
        self.app, self.name = app, name
        self.partitions = partitions or settings.topic_partitions
        self.table = app.Table(
            name,
            default=None,
            partitions=self.partitions,
            key_type=bytes,
            use_partitioner=True,
        )
        self.positions = InputPositions()
        self.enabled = settings.processing_guarantee == "at_least_once"
        self.read = RangeReader(settings)
        self.start = GroupStart(settings, app.conf.id)
        self.stage = stage
        self._reload = True

    def revoked(self) -> None:
        self._reload = True

    async def admit(self, batch: Sequence[Any]) -> list[Any]:
        await changelog_ready(self.app, self.table)  # save() writes without an event
        if self._reload:
            try:
                self.positions.reset(self.load())
            except sv.StateVersionError as exc:
                await stop_worker(self.app, exc)
            self._reload = False
        return await admit(
            batch,
            self.positions,
            read=self.read,
            stage=self.stage,
            enabled=self.enabled,
            start=self.start,
        )

    def expected_at(self, partition: int) -> int | None:
        """The next offset the agent expects on ``partition``: the stored one until the
        agent loaded its positions (``runtime.nudge`` asks before any message came)."""
        if self._reload:
            return self.load().get(partition)
        return self.positions.expected.get(partition)

    def restart_when_stalled(self, topic: faust.TopicT, *, nudge: bool) -> None:
        """Restart a partition of ``topic`` (the agent's input) that stands still behind its
        end (``runtime.nudge``): with ``nudge``, an internal topic of JSON values, by writing
        ``runtime.nudge.NUDGE``, which the agent skips; otherwise, a contract topic not the
        worker's to write, by seeking Faust's consumer back to the expected offset."""
        if self.enabled:
            watch_stalls(
                self.app,
                topic,
                self.expected_at,
                self.start,
                stage=self.stage,
                nudge=NUDGE if nudge else None,
            )

    def save(self, batch: Sequence[Any]) -> None:
        """Record the next offset of each partition of ``batch``: call after its outputs
        were acknowledged, so a saved position never claims work that could still be lost."""
        self.save_at(self.mark(batch))

    def mark(self, batch: Sequence[Any]) -> dict[int, int]:
        """The next offset of each partition of ``batch``, taken right after ``admit``: what
        ``save_at`` records once the outputs are acknowledged, when later batches were
        admitted meanwhile (a pipelined agent)."""
        parts = {e.message.partition for e in batch}
        return {p: o for p, o in self.positions.expected.items() if p in parts}

    def save_at(self, marks: dict[int, int]) -> None:
        for part, offset in marks.items():
            key = row_key(part, self.partitions)
            self.table[key] = versioned(KIND, {"offset": offset})
            if key != (old := str(part).encode()):
                self.table.pop(old, None)  # an older worker's row: superseded

    def load(self) -> dict[int, int]:
        """The stored next offset per partition, from rows of any version up to today's."""
        found: dict[int, int] = {}
        old: dict[int, int] = {}  # rows keyed "p" by older workers
        for key, value in self.table.items():
            row = read_record(self.name, KIND, key, value)
            if row is not None:
                part, _, suffix = key.partition(b"~")
                (found if suffix else old)[int(part)] = int(row["offset"])
        return {**old, **found}
