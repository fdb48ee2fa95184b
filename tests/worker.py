"""A `cpwatch worker` child process for one test, on that test's settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cpwatch.settings import Settings
from tests.conftest import ROOT, settings_env


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """The worker on ``settings``, its output (stdout and stderr) in ``log_path``."""
    with log_path.open("wb") as log:  # the child keeps a descriptor of its own
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
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
