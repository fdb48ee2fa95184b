"""A `cpwatch worker` child process for one test, on that test's settings."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from cpwatch.settings import Settings
from tests.conftest import ROOT, WORKER, settings_env


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """The worker on ``settings``, its output (stdout and stderr) in ``log_path``."""
    with log_path.open("wb") as log:  # the child keeps a descriptor of its own
        return subprocess.Popen(
            WORKER,
            env=settings_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def dump_tasks(proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 15.0) -> None:
    """Have a running worker log where each of its asyncio tasks waits and Faust's view of its
    partitions (runtime/task_dump.py, SIGUSR2): for a failing test's report on a stall. Sent
    only once the worker handles the signal: before, SIGUSR2 ends the process."""
    if proc.poll() is not None or not _catches(proc.pid, signal.SIGUSR2):
        return
    dumps = _dumps(log_path)  # a restarted worker's log can hold an earlier dump
    proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _dumps(log_path) == dumps:
        time.sleep(0.2)


def _dumps(log_path: Path) -> int:
    return log_path.read_text(errors="replace").count("faust consumer:")


def _catches(pid: int, sig: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def threads(pid: int) -> str:
    """Where each thread of ``pid`` and of its child processes is (py-spy, installed with the
    dev tools): a stalled loop or a hung classifier shows here when a task dump cannot run."""
    from bench.children import child_pids

    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return "(py-spy not installed)"
    out = []
    for p in [pid, *child_pids(pid)]:
        dump = subprocess.run(
            [str(spy), "dump", "--pid", str(p)], capture_output=True, text=True, timeout=60
        )
        out.append(dump.stdout[:6000] + dump.stderr[-500:])
    return "\n".join(out)


def stall_report(proc: subprocess.Popen[bytes], log_path: Path) -> str:
    """A failing wait's context on a worker: its tasks (in its log), threads and log tail."""
    dump_tasks(proc, log_path)
    alive = "running" if proc.poll() is None else f"exited {proc.returncode}"
    log = log_path.read_text(errors="replace")[-60_000:]
    return f"worker {alive}; threads:\n{threads(proc.pid)}\nworker log:\n{log}"
