"""Versioned Faust-table records at the agent edge: read with ``cpwatch.state_versions``, and a
record newer than this code stops the whole worker instead of one agent.

An exception in a Faust agent only crashes that actor, and its supervisor restarts it: the
restarted actor would meet the same record again (or skip the batch that held it) while the
other agents run on. A newer record means this worker is older than the state it was given, so
nothing it does from here is right; crashing the app ends ``faust.Worker`` with the error.
A worker that crashes while still joining its group can hang in its own shutdown (seen in the
upgrade test on a loaded box), so a watchdog ends the process if it is still there later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, NoReturn

import faust

from cpwatch import metrics
from cpwatch import state_versions as sv

log = logging.getLogger(__name__)

STOP_GRACE_S = 20.0  # a clean Faust shutdown takes a few seconds
RETRY_FIRST_S = 0.5  # a failed batch's first backoff (run_batches), doubled each time
RETRY_MAX_S = 30.0
_watchdog: list[threading.Timer] = []


def read_record(table: str, kind: str, key: Any, value: Any) -> Any:
    """``value`` (a table row of ``kind``) migrated to the current version; the error of a
    record this code cannot read names the table and key."""
    try:
        return sv.migrate(kind, value)
    except sv.StateVersionError as exc:
        raise sv.StateVersionError(f"table {table!r}, key {key!r}: {exc}") from exc


def versioned(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A record of ``kind`` as written today: its fields and the current version."""
    return {**fields, sv.VERSION_KEY: sv.current(kind)}


async def stop_worker(app: faust.App, error: sv.StateVersionError) -> NoReturn:
    """Crash the app (the worker exits 1 with ``error``), then end the calling agent."""
    log.critical("%s", error)
    arm_watchdog()
    await app.crash(error)
    raise error


def arm_watchdog(
    grace_s: float = STOP_GRACE_S, exit_now: Callable[[int], object] = os._exit
) -> threading.Timer:
    """Exit with status 1 after ``grace_s`` unless the process ended first (armed once). A
    thread, not a task: it must fire even when the event loop is stuck."""
    if not _watchdog:

        def fire() -> None:
            log.critical("the worker did not stop within %.0f s; exiting", grace_s)
            for handler in logging.getLogger().handlers:
                handler.flush()
            exit_now(1)

        timer = threading.Timer(grace_s, fire)
        timer.daemon = True
        timer.start()
        _watchdog.append(timer)
    return _watchdog[0]


def apply_writes(table: MutableMapping[Any, Any], writes: Iterable[tuple[Any, Any]]) -> None:
    """Apply a processor's table writes in their order; a ``None`` record deletes the key."""
    for key, record in writes:
        if record is None:
            table.pop(key, None)
        else:
            table[key] = record


async def changelog_ready(app: faust.App, table: Any) -> None:
    """Call before writing a table whose changelog partition the producer picks
    (``use_partitioner``), before every batch that writes. Faust computes that partition
    synchronously from the producer's cached metadata, and a changelog topic missing there makes
    the write raise TypeError inside the agent, which then stops.

    The lookup tracks the changelog topic in the producer's metadata, which then keeps it
    (runtime/faust_producer.py). Before the producer tracked topics from its start, a refresh
    could drop a topic looked up from an earlier all-topic answer (the news agent stopped that
    way a few seconds after start), so the cache is still checked on each call."""
    producer = app.producer._ensure_producer()
    topic = table.changelog_topic.get_topic_name()
    if producer.client.cluster.partitions_for_topic(topic) is None:
        await producer.partitions_for(topic)


async def run_batches(
    app: faust.App,
    stream: faust.StreamT,
    size: int,
    within_s: float,
    handle: Callable[[list[Any]], Awaitable[None]],
    restart: Callable[[], None],
    *,
    stage: str,
) -> None:
    """A stateful agent's loop: ``handle`` each ``take_events`` batch; a record from a newer
    release stops the worker (``stop_worker``) instead of being misread.

    A batch that fails otherwise (Kafka unreachable mid-batch: a broker restart) is handled
    again after a capped backoff, from the state last saved: ``restart()`` makes the next call
    reload it, so what the failed attempt applied but never saved is applied again, and what
    it sent is sent again under the same ids. Raised out of the agent, the error went to
    Faust's handler, which commits and so flushes the producer: in a CI run of the broker
    restart test the holder stage's agent failed as Kafka stopped and then waited on that
    flush until the test ended, its input standing still."""
    async for batch in stream.take_events(size, within=within_s):
        delay = RETRY_FIRST_S
        while True:
            try:
                await handle(batch)
                break
            except sv.StateVersionError as exc:
                await stop_worker(app, exc)
            except Exception:
                log.exception(
                    "%s: a batch of %d failed; again from the saved state in %.1f s",
                    stage,
                    len(batch),
                    delay,
                )
                metrics.BATCH_RETRIES.labels(stage).inc()
                restart()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
