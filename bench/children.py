"""What the end-to-end benchmarks share around the code they measure: the cpwatch processes
they start (with the argv ``cpwatch run`` gives them, app/supervisor.py) and a watcher noting
when records first reach a topic."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from app.supervisor import plan
from cpwatch.namespace import child_env
from cpwatch.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = 30.0


def namespace(name: str, **update: Any) -> tuple[Settings, Path]:
    """Settings on a namespace of their own (topics ``<name>-<8 hex>-*``, indices
    ``<name>-<8 hex>-*``) and a new temporary directory for its files (Faust data, logs).
    Webhooks to loopback are admitted and the worker's /metrics is off (other workers on this
    machine may hold its port); ``update`` sets more."""
    uid = f"{name}-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix=f"cpwatch-{uid}-"))
    settings = Settings().model_copy(
        update={
            "topic_prefix": f"{uid}-",
            "es_index_prefix": uid,
            "faust_data_dir": tmp / "faust",
            "delivery_ssrf_allowlist": "127.0.0.1",
            "metrics_port": 0,
            **update,
        }
    )
    return settings, tmp


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (a worker's classifier processes), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(pid):
            try:
                if int(_stat(int(entry.name))[1]) == pid:  # field 4: parent pid
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    return found


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), with those of its live
    child processes unless ``children`` is False."""
    total = 0
    for p in [pid, *(child_pids(pid) if children else [])]:
        try:
            fields = _stat(p)
        except OSError:
            continue  # a child gone meanwhile
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Children:
    """cpwatch children of one namespace (``worker``, ``api``: what ``cpwatch run`` starts,
    no sample producers), each writing to ``<log_dir>/<name>.log``; stopped together."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings, self.log_dir = settings, log_dir
        self.argv = {c.name: c.argv for c in plan(settings, sample=False)}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> subprocess.Popen[bytes]:
        with open(self.log_path(name), "wb") as log:  # the child keeps a descriptor of its own
            self.procs[name] = subprocess.Popen(
                self.argv[name],
                env=child_env(self.settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return self.procs[name]

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 8) -> list[str]:
        path = self.log_path(name)
        return path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []

    def stop(self) -> None:
        """SIGTERM to every live child, then wait; SIGKILL one that outlasts STOP_TIMEOUT_S."""
        live = [p for p in self.procs.values() if p.poll() is None]
        for proc in live:
            proc.terminate()
        for proc in live:
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class TopicWatch(threading.Thread):
    """A group-less consumer from the start of ``topics`` (logical names) until ``stop`` is set:
    ``note(topic, doc, now)`` gets each record's JSON with the time its poll returned."""

    POLL_MS = 100

    def __init__(self, settings: Settings, *topics: str, **consumer: Any) -> None:
        super().__init__(daemon=True)
        self.settings, self.topics, self.consumer = settings, topics, consumer
        self.stop = threading.Event()

    def note(self, topic: str, doc: Any, now: float) -> None:
        raise NotImplementedError

    def run(self) -> None:
        from kafka import KafkaConsumer

        s = self.settings
        names = {s.topic(t): t for t in self.topics}
        consumer = KafkaConsumer(
            *names,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **self.consumer,
            **s.kafka_client_kwargs(),
        )
        try:
            while not self.stop.is_set():
                for tp, msgs in consumer.poll(timeout_ms=self.POLL_MS).items():
                    now = time.time()
                    for m in msgs:
                        self.note(names[tp.topic], json.loads(m.value), now)
        finally:
            consumer.close()
