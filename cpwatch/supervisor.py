"""``cpwatch run``: the main job — worker, API and sample producers as supervised children.

Every stage runs as its own process (its own event loop, its own /metrics port later), started
in dependency order. Ctrl-C or SIGTERM stops all of them cleanly; if one dies unexpectedly the
others are stopped too and the exit status says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rich.console import Console

from cpwatch.settings import Settings

STOP_TIMEOUT_S = 20.0


@dataclass
class Child:
    name: str
    argv: list[str]
    oneshot: bool = False  # a producer replaying a file exits 0 when done
    proc: subprocess.Popen[bytes] | None = None


def _cpwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "cpwatch.cli", *args]


def sample_file(name: str) -> Path:
    return Path(str(resources.files("cpwatch") / "data" / name))


def plan(settings: Settings, sample: bool) -> list[Child]:
    children = [
        Child("worker", _cpwatch("worker")),
        Child(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.app:create_app",
                "--factory",
                "--host",
                settings.api_host,
                "--port",
                str(settings.api_port),
                "--log-level",
                "warning",
            ],
        ),
    ]
    if sample:
        children += [
            Child(
                "holdings",
                _cpwatch("produce", "holdings", str(sample_file("treasuries.csv"))),
                oneshot=True,
            ),
            Child(
                "news",
                _cpwatch(
                    "produce",
                    "news",
                    "--jsonl",
                    str(sample_file("sample_news.jsonl")),
                    "--speed",
                    "0",
                ),
                oneshot=True,
            ),
            Child(
                "prices",
                _cpwatch(
                    "produce",
                    "prices",
                    "--csv",
                    str(sample_file("btc_usd_daily.csv")),
                    "--speed",
                    "30",
                ),
                oneshot=True,
            ),
        ]
    return children


def run_all(settings: Settings, *, sample: bool, duration: float | None, console: Console) -> int:
    from cpwatch.worker import prepare

    prepare(settings)  # topics and index templates exist before any child starts
    children = plan(settings, sample)
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    for child in children:
        child.proc = subprocess.Popen(child.argv, env=dict(os.environ))  # noqa: S603
        console.print(f"started {child.name} (pid {child.proc.pid})")
        if child.name == "worker":
            time.sleep(5)  # let the worker join its group before producers start
    console.print(
        f"[green]cpwatch running[/green]: API and dashboard on http://{settings.api_host}:{settings.api_port}/"
        f"  search: http://{settings.api_host}:{settings.api_port}/api/search?q=IMF  (Ctrl-C stops)"
    )
    deadline = time.monotonic() + duration if duration else None
    status = 0
    while not stopping:
        time.sleep(0.5)
        for child in children:
            rc = child.proc.poll() if child.proc else None
            if rc is None:
                continue
            if child.oneshot and rc == 0:
                console.print(f"{child.name} finished")
                child.proc = None
            elif child.proc is not None:
                console.print(f"[red]{child.name} exited with status {rc}; stopping[/red]")
                status, stopping = 1, True
                child.proc = None
        if deadline and time.monotonic() > deadline:
            stopping = True
    _terminate(children, console)
    return status


def _terminate(children: list[Child], console: Console) -> None:
    live = [c for c in reversed(children) if c.proc and c.proc.poll() is None]
    for c in live:
        c.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    for c in live:
        try:
            c.proc.wait(timeout=STOP_TIMEOUT_S)  # type: ignore[union-attr]
        except subprocess.TimeoutExpired:
            c.proc.kill()  # type: ignore[union-attr]
        console.print(f"stopped {c.name}")
