"""A stateful agent's batch that fails mid-way is handled again from the saved state, after a
backoff, instead of leaving the agent (runtime/table_state.run_batches)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cpwatch import metrics
from cpwatch import state_versions as sv
from runtime import table_state
from runtime.table_state import run_batches


class Stream:
    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches

    async def take_events(self, size: int, within: float) -> AsyncIterator[list[int]]:
        for batch in self.batches:
            yield batch


def test_a_failed_batch_is_handled_again_after_a_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(table_state, "RETRY_FIRST_S", 0.001)
    handled: list[list[int]] = []
    log: list[str] = []
    failures = iter([ConnectionError("broker gone"), TimeoutError("no leader")])

    async def handle(batch: list[int]) -> None:
        handled.append(batch)
        log.append("handle")
        if batch == [1, 2] and (exc := next(failures, None)) is not None:
            raise exc

    def restart() -> None:
        log.append("restart")

    retries = metrics.BATCH_RETRIES.labels("s")
    before = retries._value.get()
    stream: Any = Stream([[1, 2], [3]])
    asyncio.run(run_batches(None, stream, 2, 0.05, handle, restart, stage="s"))  # type: ignore[arg-type]
    assert retries._value.get() - before == 2
    assert handled == [[1, 2], [1, 2], [1, 2], [3]]  # the same batch until it went through
    assert log == ["handle", "restart", "handle", "restart", "handle", "handle"]


def test_a_newer_state_still_stops_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    stopped: list[Exception] = []

    async def stop(app: Any, exc: sv.StateVersionError) -> None:
        stopped.append(exc)
        raise exc

    monkeypatch.setattr(table_state, "stop_worker", stop)

    async def handle(batch: list[int]) -> None:
        raise sv.StateVersionError("version 9")

    stream: Any = Stream([[1]])
    with pytest.raises(sv.StateVersionError):
        asyncio.run(run_batches(None, stream, 1, 0.05, handle, lambda: None, stage="s"))  # type: ignore[arg-type]
    assert len(stopped) == 1
