"""``kill -USR2 <worker pid>`` logs where every asyncio task of the worker is waiting.

Faust's own SIGUSR1 dump shows a task's outermost frame only; a stalled agent waits several
awaits deeper (a stream batch, a producer flush, a guard's broker read). This follows each
task's chain of awaited coroutines and async generators down to the innermost one.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import Any

log = logging.getLogger(__name__)


def await_chain(coro: Any) -> list[str]:
    """``file:line function`` for each frame from the task's coroutine to what it awaits."""
    out: list[str] = []
    while coro is not None and len(out) < 64:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        frame = frame or getattr(coro, "gi_frame", None)
        if frame is not None:
            out.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        nxt = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        coro = nxt or getattr(coro, "gi_yieldfrom", None)
        if coro is not None and not _is_frame_holder(coro):
            coro = _behind(coro, out)
    return out


def _behind(obj: Any, out: list[str]) -> Any:
    """What a frameless awaitable waits on: ``async for``'s pending step holds its generator,
    a Future's iterator its Future, and a Task runs a coroutine (an agent's actor awaits the
    task of its function). Anything else ends the chain."""
    if isinstance(obj, asyncio.Task):
        out.append(f"[task {obj.get_name()}]")
        return obj.get_coro()
    for ref in gc.get_referents(obj):
        if _is_frame_holder(ref):
            return ref
        if isinstance(ref, asyncio.Task):
            return _behind(ref, out)
    out.append(f"<{type(obj).__name__}>")
    return None


def _is_frame_holder(obj: Any) -> bool:
    return any(hasattr(obj, a) for a in ("cr_frame", "ag_frame", "gi_frame"))


def dump_tasks(loop: asyncio.AbstractEventLoop) -> str:
    lines = []
    for task in asyncio.all_tasks(loop):
        chain = await_chain(task.get_coro())
        lines.append(f"task {task.get_name()}: " + " -> ".join(chain[-6:]))
    return "\n".join(sorted(lines))


def install(app: Any) -> None:
    """Take SIGUSR2 on the worker's loop once the app runs. mode's worker binds it to pdb,
    which on a worker without a terminal only stops every agent until it quits."""

    @app.task
    async def _bind() -> None:
        loop = asyncio.get_running_loop()

        def handler() -> None:
            log.warning("asyncio tasks (innermost six frames each):\n%s", dump_tasks(loop))
            log.warning("faust consumer:\n%s", dump_consumer(app))

        loop.add_signal_handler(signal.SIGUSR2, handler)


def dump_consumer(app: Any) -> str:
    """Faust's view of its partitions (private attributes, read for diagnosis only): which are
    assigned, fetched, paused or held for a full buffer, and where reading and committing are."""
    c = app.consumer
    recovery = app.tables.recovery

    def tps(items: Any) -> str:
        return ", ".join(
            sorted(f"{'-'.join(tp.topic.split('-')[-2:])}/{tp.partition}" for tp in items)
        )

    fields = {
        "flow_active": getattr(c, "flow_active", None),
        "rebalancing": app.rebalancing,
        "recovery completed": recovery.completed.is_set(),
        "in_recovery": app.in_recovery,
        "assigned": tps(c.assignment()),
        "active": tps(getattr(c, "_active_partitions", None) or ()),
        "paused": tps(getattr(c, "_paused_partitions", ())),
        "buffered": tps(getattr(c, "_buffered_partitions", ())),
        "read_offset": {str(k): v for k, v in getattr(c, "_read_offset", {}).items()},
        "committed": {str(k): v for k, v in getattr(c, "_committed_offset", {}).items()},
        "aiokafka": _aiokafka_view(c),
    }
    return "\n".join(f"  {k}: {v}" for k, v in fields.items())


def _aiokafka_view(c: Any) -> str:
    """The aiokafka consumer's own state per input partition (changelogs left out): paused,
    its fetch position (or the reset it awaits), and whether fetched records wait for it."""
    try:
        consumer = c._thread._consumer
        assignment = consumer._subscription.subscription.assignment
        waiting = set(consumer._fetcher._records)
    except AttributeError as exc:
        return f"unavailable ({exc})"
    rows = []
    for tp, st in sorted(assignment._tp_state.items()):
        if tp.topic.endswith("-changelog"):
            continue
        at = st._position if st.has_valid_position else f"reset:{st._status.name}"
        flags = ("paused " if st.paused else "") + ("records " if tp in waiting else "")
        rows.append(f"{'-'.join(tp.topic.split('-')[-2:])}/{tp.partition}={at} {flags}".strip())
    return ", ".join(rows)
