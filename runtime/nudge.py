"""Restart an input partition that stands still behind its end.

The input-position guard (``runtime.positions``) reads a skipped range in when the partition's
next message reveals it. When Faust dropped a partition's last messages at a rebalance, or its
group committed past them, no next message comes and the partition stands still for good
(``StallWatch`` says why). For a topic the worker owns, writing a message the agent recognises
and ignores is that next message (a nudge). A contract topic can't be written to: its consumers
outside the worker would read the nudge. There Faust's consumer is sought back to the agent's
expected offset, so the missing messages are fetched again; any it still had queued come twice,
and the guard drops the second copies as already applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import faust

from runtime.positions import StallWatch, Start

log = logging.getLogger(__name__)

AFTER_S = 10.0  # a partition standing still behind its end this long is nudged
# The nudge of a topic of JSON records: never valid JSON, so no reader can mistake it for one.
NUDGE = b"\x00nudge"


def watch_stalls(
    app: faust.App,
    topic: faust.TopicT,
    expected: Callable[[int], int | None],
    start: Start,
    *,
    stage: str,
    nudge: bytes | None,
    after_s: float = AFTER_S,
) -> None:
    """Check every ``after_s / 2`` each partition of ``topic`` assigned to this worker, and
    write ``nudge`` to one whose expected position has not moved for ``after_s`` while the
    broker holds more (``nudge`` None: seek Faust's consumer back to that position).
    ``expected(partition)`` is the agent's next offset there, read from its table while the
    agent has not loaded it yet (a restarted worker whose first messages were committed past
    gets no message to load it with); ``None``: where the group resumes it.
    Call only in at-least-once mode."""
    stalls = StallWatch(after_s)
    # Where the group resumes a partition the agent has no position for, asked once per
    # assignment: only the agent (which then records a position) or another member before a
    # rebalance moves that commit, so each period need not build a consumer to ask again.
    starts: dict[int, int] = {}

    @app.on_partitions_revoked.connect
    async def _forget_starts(app: faust.App, revoked: Any, **_: Any) -> None:
        starts.clear()

    async def check() -> None:
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            return
        name = topic.get_topic_name()
        try:
            tps = {tp for tp in app.consumer.assignment() if tp.topic == name}
            ends = await app.consumer.highwaters(*tps) if tps else {}
            unknown = [
                tp.partition
                for tp, end in ends.items()
                if end and expected(tp.partition) is None and tp.partition not in starts
            ]
            if unknown:
                starts.update(await start(name, unknown))
            now = time.monotonic()
            for tp, end in ends.items():
                if not end:
                    continue
                at = expected(tp.partition)
                if at is None:
                    at = starts[tp.partition]
                if not stalls.due(tp.partition, at, end, now):
                    continue
                done = "nudged" if nudge is not None else "sought back to it"
                log.warning(
                    "%s: %s-%d stands at %d of %d; %s", stage, name, tp.partition, at, end, done
                )
                if nudge is not None:
                    await topic.send(key=b"", value=nudge, partition=tp.partition)
                else:
                    await app.consumer.seek(tp, at)
        except Exception as exc:  # noqa: BLE001 - the next period tries again
            log.warning("%s: stall check failed: %r", stage, exc)

    app.timer(interval=after_s / 2, name=f"{stage}-nudge")(check)
