"""``cpwatch run``: the main job — worker, API and sample producers as supervised children.

Every stage runs as its own process (its own event loop, its own /metrics port), started in
dependency order: the worker and the API, then the holdings (reference data, sent to the end
before anything else), then news and prices together. A worker that dies is restarted with a
backoff, a few times at most (it resumes from Kafka and its changelogged state); any other child
that dies unexpectedly stops everything. Ctrl-C or SIGTERM stops all children cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rich.console import Console

from cpwatch.settings import Settings

STOP_TIMEOUT_S = 20.0
RESTARTS = 5  # worker restarts allowed within RESTART_PERIOD_S before the job gives up
RESTART_PERIOD_S = 600.0
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass
class Child:
    name: str
    argv: list[str]
    oneshot: bool = False  # a producer replaying a file exits 0 when done
    gate: bool = False  # later children start only once this one finished (exit 0)
    restart: bool = False  # restarted when it dies (the worker)
    proc: subprocess.Popen[bytes] | None = None
    started: bool = False
    restarts: list[float] = field(default_factory=list)  # monotonic times of restarts


def _cpwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def sample_file(name: str) -> Path:
    return Path(str(resources.files("cpwatch") / "data" / name))


def plan(settings: Settings, sample: bool) -> list[Child]:
    children = [
        Child("worker", _cpwatch("worker"), restart=True),
        Child(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.server:create_app",
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
                gate=True,  # holdings are in Kafka before the first price tick is sent
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
    from app.worker import prepare

    prepare(settings)  # topics and index templates exist before any child starts
    children = plan(settings, sample)
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)

    def start(child: Child) -> None:
        child.proc = subprocess.Popen(child.argv, env=dict(os.environ))  # noqa: S603
        child.started = True
        console.print(f"started {child.name} (pid {child.proc.pid})")

    deadline = time.monotonic() + duration if duration else None
    restart_at: dict[str, float] = {}
    status = 0
    announced = False
    while not stopping:
        # Start children in order; a running gate child holds back the ones after it.
        for child in children:
            if child.started:
                if child.gate and child.proc is not None:
                    break
                continue
            start(child)
            if child.name == "worker":
                time.sleep(5)  # let the worker join its group before producers start
            if child.gate:
                break
        if not announced and all(c.started for c in children):
            announced = True
            url = f"http://{settings.api_host}:{settings.api_port}"
            console.print(
                f"[green]cpwatch running[/green]: API and dashboard on {url}/"
                f"  search: {url}/api/search?q=IMF  (Ctrl-C stops)"
            )
            if not _has_token(settings):
                console.print(
                    "no API token yet (subscriptions and alerts need one): run `cpwatch tokens"
                    " create --scope write` and export it as CPWATCH_API_TOKEN",
                    soft_wrap=True,  # one line, whatever the terminal's width
                )
        time.sleep(0.5)
        now = time.monotonic()
        for child in children:
            if child.name in restart_at and now >= restart_at[child.name]:
                del restart_at[child.name]
                start(child)
            rc = child.proc.poll() if child.proc else None
            if rc is None:
                continue
            child.proc = None
            if child.oneshot and rc == 0:
                console.print(f"{child.name} finished")
            elif child.restart and not stopping and _may_restart(child, now):
                wait = BACKOFF_S[min(len(child.restarts), len(BACKOFF_S)) - 1]
                console.print(
                    f"[yellow]{child.name} exited with status {rc}; restarting in {wait:.0f} s "
                    f"({len(child.restarts)} of {RESTARTS} within {RESTART_PERIOD_S:.0f} s)"
                    "[/yellow]"
                )
                restart_at[child.name] = now + wait
            else:
                console.print(f"[red]{child.name} exited with status {rc}; stopping[/red]")
                status, stopping = 1, True
        if deadline and time.monotonic() > deadline:
            stopping = True
    _terminate(children, console)
    return status


def _has_token(settings: Settings) -> bool:
    from cpwatch.tokens import TokenError, any_configured

    try:
        return any_configured(settings)
    except (OSError, TokenError):
        return True  # a token file exists but is unreadable: the API logs why


def _may_restart(child: Child, now: float) -> bool:
    """Record a restart unless RESTARTS already happened within RESTART_PERIOD_S."""
    child.restarts = [t for t in child.restarts if now - t < RESTART_PERIOD_S]
    if len(child.restarts) >= RESTARTS:
        return False
    child.restarts.append(now)
    return True


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
