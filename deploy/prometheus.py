"""Optional Prometheus on loopback (``cpwatch stack up --with-prometheus``), from Debian's package.

It listens on 127.0.0.1:9091, not 9090: on a systemd machine Debian's ``prometheus`` package
starts its own service on 9090, which cpwatch leaves alone. It scrapes the ports listed in
``deploy/prometheus/prometheus.yml`` and evaluates ``rules.yml`` next to it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from rich.console import Console

from cpwatch.exceptions import StackError
from cpwatch.settings import Settings
from deploy.install import require_tool

CONFIG = Path(__file__).parent / "prometheus" / "prometheus.yml"
PROM_PORT = 9091
READY_TIMEOUT_S = 30.0


def _pid_file(settings: Settings) -> Path:
    return settings.stack_dir / "prometheus.pid"


def start_prometheus(settings: Settings, console: Console) -> None:
    pid_file = _pid_file(settings)
    if pid_file.exists() and _alive(pid_file):
        console.print("prometheus already running")
        return
    pid_file.unlink(missing_ok=True)
    binary = require_tool("prometheus", "apt-get install prometheus")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        if sock.connect_ex(("127.0.0.1", PROM_PORT)) == 0:
            raise StackError(f"port {PROM_PORT} is taken by a process cpwatch did not start")
    data = settings.stack_dir / "prometheus-data"
    data.mkdir(parents=True, exist_ok=True)
    (settings.stack_dir / "logs").mkdir(parents=True, exist_ok=True)
    log = open(settings.stack_dir / "logs" / "prometheus.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(  # noqa: S603
        [
            binary,
            f"--config.file={CONFIG}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{PROM_PORT}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    pid_file.write_text(str(proc.pid))
    _wait_ready(proc)
    console.print(f"prometheus on http://127.0.0.1:{PROM_PORT} (pid {proc.pid})")


def _alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
    except (ProcessLookupError, ValueError):
        return False
    return True


def _wait_ready(proc: subprocess.Popen[bytes]) -> None:
    """Bounded wait for ``/-/ready``; a Prometheus that exits (bad config) is an error."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"prometheus exited with status {proc.returncode}; see its log")
        try:
            url = f"http://127.0.0.1:{PROM_PORT}/-/ready"
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - fixed loopback URL
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise StackError(f"prometheus not ready on port {PROM_PORT} within {READY_TIMEOUT_S:.0f}s")


def stop_prometheus(settings: Settings, console: Console) -> None:
    pid_file = _pid_file(settings)
    if not pid_file.exists():
        return
    try:
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
        console.print("prometheus: stopped")
    except (ProcessLookupError, ValueError) as exc:
        raise StackError(f"prometheus pid file {pid_file} is stale: {exc}") from None
    finally:
        pid_file.unlink(missing_ok=True)
