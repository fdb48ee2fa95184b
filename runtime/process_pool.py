"""CPU-bound batch work beside the worker's event loop, in spawned processes.

The worker is one asyncio loop. Classifying news is pure Python and took over a third of that
loop's time, so while it ran nothing else moved: not the sinks, not the clusterer, not the
producer. Here a batch goes to a process of its own and the loop serves everything else until
the result comes back. ``processes=0`` runs the same function on the loop (the old way).

Processes are spawned, never forked: a fork of a running Faust worker would copy its event
loop, threads and sockets. Each process runs ``initializer`` once, so the function needs only
its batch. A process that dies (killed, out of memory) breaks the pool: it is rebuilt and the
batch retried once; a batch that breaks it twice runs on the loop, so the stream never stops
over it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _watch_parent(parent: int) -> None:
    # A worker killed outright (SIGKILL, OOM) cannot stop its pool: each process leaves on
    # its own once its parent is gone, instead of lingering as an orphan.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _start_process(parent: int, initializer: Callable[..., None], *initargs: Any) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the worker decides when its pool
    # stops, so a process here neither dies mid-batch nor prints a KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    initializer(*initargs)


class OffloadPool:
    """Runs ``fn(items, *args) -> list`` on batches, split over ``processes`` processes."""

    def __init__(
        self, processes: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
    ) -> None:
        self.processes = processes
        self._initializer = initializer
        self._initargs = initargs
        self._executor: ProcessPoolExecutor | None = None
        self._inline_ready = False

    async def map_batch(
        self, fn: Callable[..., list[R]], items: Sequence[T], *args: Any
    ) -> list[R]:
        """``fn`` over ``items`` in order; chunks run in parallel when there are processes."""
        if not items:
            return []
        if self.processes == 0:
            return self._inline(fn, items, *args)
        for attempt in (1, 2):
            try:
                return await self._in_processes(fn, items, *args)
            except BrokenProcessPool as exc:
                log.warning("classifier process died (%r); attempt %d of 2", exc, attempt)
                self._discard()
        log.error("batch of %d broke the process pool twice; running it on the loop", len(items))
        return self._inline(fn, items, *args)

    async def _in_processes(
        self, fn: Callable[..., list[R]], items: Sequence[T], *args: Any
    ) -> list[R]:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_process,
                initargs=(os.getpid(), self._initializer, *self._initargs),
            )
        loop = asyncio.get_running_loop()
        size = -(-len(items) // self.processes)  # ceil: one chunk per process
        chunks = [list(items[i : i + size]) for i in range(0, len(items), size)]
        parts = await asyncio.gather(
            *(loop.run_in_executor(self._executor, fn, chunk, *args) for chunk in chunks)
        )
        return [r for part in parts for r in part]

    def _inline(self, fn: Callable[..., list[R]], items: Sequence[T], *args: Any) -> list[R]:
        if not self._inline_ready:
            self._initializer(*self._initargs)
            self._inline_ready = True
        return fn(list(items), *args)

    def _discard(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def close(self) -> None:
        """Stop the processes (they exit once their current chunk is done)."""
        self._discard()
