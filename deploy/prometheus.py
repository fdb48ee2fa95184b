"""Optional Prometheus on loopback (``cpwatch stack up --with-prometheus``), from Debian's package."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from rich.console import Console

from cpwatch.exceptions import StackError
from cpwatch.settings import Settings
from deploy.install import require_tool

CONFIG = Path(__file__).parent / "prometheus" / "prometheus.yml"
PROM_PORT = 9090


def _pid_file(settings: Settings) -> Path:
    return settings.stack_dir / "prometheus.pid"


def start_prometheus(settings: Settings, console: Console) -> None:
    pid_file = _pid_file(settings)
    if pid_file.exists():
        console.print("prometheus already running")
        return
    binary = require_tool("prometheus", "apt-get install prometheus")
    data = settings.stack_dir / "prometheus-data"
    data.mkdir(parents=True, exist_ok=True)
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
    console.print(f"prometheus on http://127.0.0.1:{PROM_PORT} (pid {proc.pid})")


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
