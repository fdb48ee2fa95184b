"""Decoded states over a Faust table, with the input positions they expect.

A batched stateful agent (the treasury's symbol and holder stages) keeps one record per key in
a Faust table and its decoded form in memory. Each record also holds the next input offset of
the partition its key came from, so after a restart or a rebalance the agent knows exactly where
its input resumes (runtime/positions.py). The cache is reloaded from the table only between
batches: clearing it mid-batch made the rest of the batch start from the table's older state and
save it over the first part's updates (kill -9 fault test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from runtime.positions import InputPositions


class Saved(Protocol):
    partition: int | None  # of the agent's input
    next_offset: int | None  # the input offset this state expects next there

    def to_record(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=Saved)


class TableStates(Generic[S]):
    """``load(key, record)`` decodes a table record (``None``: a new key)."""

    def __init__(self, table: Any, load: Callable[[bytes, dict[str, Any] | None], S]) -> None:
        self.table, self.load = table, load
        self.cache: dict[bytes, S] = {}
        self.positions = InputPositions()
        self.reload_pending = True  # at start and on revocation; honoured between batches

    def get(self, key: bytes, record: dict[str, Any] | None = None) -> S:
        st = self.cache.get(key)
        if st is None:
            st = self.cache[key] = self.load(key, record or self.table.get(key))
        return st

    def expected_at(self, partition: int) -> int | None:
        """The next offset expected on ``partition``; while a reload is pending, the one the
        table's states give (read only: the cache is replaced between batches, never here)."""
        if not self.reload_pending:
            return self.positions.expected.get(partition)
        return stored_positions(self.table.values()).get(partition)

    def restart(self) -> None:
        """Reload from the table before the next batch: a batch failed after changing the cache,
        and is handled again from the last saved states."""
        self.reload_pending = True

    def reload_if_pending(self) -> None:
        """Restart from the table after a rebalance: every local key, and the offsets the saved
        states expect next."""
        if not self.reload_pending:
            return
        self.reload_pending = False
        self.cache.clear()
        records = list(self.table.items())
        for key, record in records:
            self.get(key, record)
        self.positions.reset(stored_positions(record for _, record in records))

    def save(self, partitions: set[int]) -> list[tuple[bytes, S]]:
        """Every state of a partition seen in this batch records the partition's next offset,
        so a restore knows exactly where its input resumes. Returns what was saved."""
        saved = []
        for key, st in self.cache.items():
            if st.partition not in partitions:
                continue
            st.next_offset = self.positions.expected.get(st.partition)
            self.table[key] = st.to_record()
            saved.append((key, st))
        return saved


def stored_positions(records: Iterable[dict[str, Any] | None]) -> dict[int, int]:
    """The next input offset per partition the saved states expect: the lowest of the
    partition's keys, so no key misses a message."""
    expected: dict[int, int] = {}
    for record in records:
        part, nxt = (record or {}).get("input") or (None, None)
        if part is not None and nxt is not None:
            expected[part] = min(nxt, expected.get(part, nxt))
    return expected
