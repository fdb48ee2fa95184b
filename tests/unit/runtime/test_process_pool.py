"""The classifier pool: batches come back whole and in order, from other processes; a dead
process is replaced; a process whose worker was killed outright does not outlive it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from runtime.process_pool import OffloadPool

_prefix = ""


def set_prefix(prefix: str) -> None:
    global _prefix  # noqa: PLW0603 - what a pool initializer sets up, per process
    _prefix = prefix


def label(items: list[int], step: int) -> list[tuple[str, int, int]]:
    return [(_prefix, i * step, os.getpid()) for i in items]


def die_once(items: list[int], marker: str) -> list[int]:
    if not Path(marker).exists():
        Path(marker).write_text("died")
        os._exit(3)  # the process ends mid-batch, as when killed
    return [i + 1 for i in items]


def die_in_child(items: list[int], parent: int) -> list[int]:
    if os.getpid() != parent:
        os._exit(3)
    return [i + 1 for i in items]


def test_inline_pool_runs_on_the_loop_after_one_initializer_call() -> None:
    calls: list[str] = []

    def init(prefix: str) -> None:
        calls.append(prefix)
        set_prefix(prefix)

    pool = OffloadPool(0, init, ("a",))

    async def scenario() -> list[list[tuple[str, int, int]]]:
        return [await pool.map_batch(label, [1, 2, 3], 10), await pool.map_batch(label, [4], 1)]

    first, second = asyncio.run(scenario())
    assert first == [("a", 10, os.getpid()), ("a", 20, os.getpid()), ("a", 30, os.getpid())]
    assert second == [("a", 4, os.getpid())]
    assert calls == ["a"]


def test_processes_return_every_item_in_order_from_other_processes() -> None:
    pool = OffloadPool(2, set_prefix, ("p",))
    items = list(range(101))  # not a multiple of the process count

    async def scenario() -> list[tuple[str, int, int]]:
        try:
            return await pool.map_batch(label, items, 2)
        finally:
            pool.close()

    out = asyncio.run(scenario())
    assert [(p, v) for p, v, _ in out] == [("p", 2 * i) for i in items]
    assert os.getpid() not in {pid for _, _, pid in out}


def test_ctrl_c_leaves_pool_processes_to_the_worker() -> None:
    pool = OffloadPool(1, set_prefix, ("c",))

    async def scenario() -> tuple[int, int]:
        try:
            first = (await pool.map_batch(label, [1], 1))[0][2]
            status = Path(f"/proc/{first}/status").read_text()
            ignored = int(status.split("SigIgn:")[1].split()[0], 16)
            assert ignored & (1 << (signal.SIGINT - 1)), "SIGINT is not ignored"
            os.kill(first, signal.SIGINT)  # as a terminal's Ctrl-C reaches the process group
            second = (await pool.map_batch(label, [2], 1))[0][2]
            return first, second
        finally:
            pool.close()

    first, second = asyncio.run(scenario())
    assert second == first  # the same process served both batches: it was not interrupted


def test_a_process_that_dies_is_replaced_and_the_batch_retried(tmp_path: Path) -> None:
    pool = OffloadPool(1, set_prefix, ("x",))

    async def scenario() -> list[int]:
        try:
            return await pool.map_batch(die_once, [1, 2, 3], str(tmp_path / "marker"))
        finally:
            pool.close()

    assert asyncio.run(scenario()) == [2, 3, 4]
    assert (tmp_path / "marker").read_text() == "died"


def test_a_batch_that_breaks_the_pool_twice_runs_on_the_loop() -> None:
    pool = OffloadPool(1, set_prefix, ("x",))

    async def scenario() -> list[int]:
        try:
            return await pool.map_batch(die_in_child, [5, 6], os.getpid())
        finally:
            pool.close()

    assert asyncio.run(scenario()) == [6, 7]


def test_pool_processes_leave_when_their_worker_is_killed(tmp_path: Path) -> None:
    # A stand-in worker: starts a pool, writes its process's pid, then is SIGKILLed. Its
    # output goes to files: a pipe would stay open as long as the pool process lives.
    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        sys.path[:0] = {sys.path!r}
        from runtime.process_pool import OffloadPool
        from test_process_pool import label, set_prefix
        pool = OffloadPool(1, set_prefix, ("k",))
        out = asyncio.run(pool.map_batch(label, [1], 1))
        open({str(pid_file)!r}, "w").write(str(out[0][2]))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    with open(tmp_path / "out.log", "wb") as log:
        code = subprocess.run(
            [sys.executable, "-c", script], stdout=log, stderr=log, timeout=120, env=env
        ).returncode
    assert code == -9, (tmp_path / "out.log").read_text()
    child = Path(f"/proc/{int(pid_file.read_text())}")
    deadline = time.monotonic() + 30
    while child.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not child.exists(), f"pool process {child.name} outlived its worker"
