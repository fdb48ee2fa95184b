"""Shared fixtures. Integration tests run against the real Kafka and Elasticsearch that
``cpwatch stack up`` installs and starts (reused when already up); each test gets its own
topic prefix and index prefix, so tests never see each other's data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cpwatch.namespace import child_env, drop_namespace
from cpwatch.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# Tests run workers at info: a failure's log then shows the group joins, partition
# assignments and table recoveries around it.
WORKER = [sys.executable, "-m", "app.cli", "worker", "--loglevel", "info"]
EXTERNAL = os.environ.get("CPWATCH_EXTERNAL_STACK") == "1"


@pytest.fixture(scope="session")
def stack() -> Settings:
    """Bring the local stack up once per session (no-op when it already runs)."""
    settings = Settings()
    if not EXTERNAL:
        from deploy.stack import Stack

        Stack(settings).up()
    return settings


def _unique(request: pytest.FixtureRequest) -> str:
    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:30]
    return f"t-{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def kafka_settings(stack: Settings, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings with a unique topic and index prefix; every cpwatch topic already created."""
    from cpwatch.topics import ensure_topics

    uid = _unique(request)
    settings = stack.model_copy(
        update={
            "topic_prefix": f"{uid}-",
            "es_index_prefix": uid,
            "home": stack.home,
            "faust_data_dir": Path(f"/tmp/cpwatch-tests/{uid}"),
        }
    )
    ensure_topics(settings)
    yield settings
    _cleanup(settings)


def _cleanup(settings: Settings) -> None:
    for problem in drop_namespace(settings):  # cleanup must never fail a test
        print(f"cleanup of {settings.topic_prefix}: {problem}", file=sys.stderr)


def free_port() -> int:
    """A loopback TCP port nobody listens on now (e.g. a child worker's /metrics)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that makes a child cpwatch process use these settings."""
    return child_env(settings)


def run_cli(
    settings: Settings, *args: str, stdin: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``cpwatch <args>`` as a child process on ``settings``; its exit code is the caller's to
    check."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=settings_env(settings),
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def worker(kafka_settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real Faust worker process (`cpwatch worker`) on this test's topics and indices."""
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        WORKER,
        env=settings_env(kafka_settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        from tests.worker import threads

        stuck = threads(proc.pid)
        proc.kill()
        proc.wait(timeout=30)
        pytest.fail(f"the worker did not stop within 30 s of SIGTERM; its threads:\n{stuck}")
    finally:
        log.close()


def wait_for(
    predicate: Callable[[], object],
    timeout: float = 60.0,
    interval: float = 0.25,
    context: Callable[[], str] | None = None,
) -> object:
    """Poll until ``predicate`` returns a truthy value; fail the test with a clear message,
    followed by what ``context`` reports (where the data stopped, a log's tail).

    Elasticsearch answers 503 ("all shards failed") for an index whose shards are still
    starting, e.g. just after a sink auto-created it: that counts as "not yet", not a failure.
    """
    from elasticsearch import ApiError

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except ApiError as exc:
            if exc.meta.status != 503:
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{context()}" if context is not None else ""
            pytest.fail(f"condition not met within {timeout}s: {predicate.__name__}{detail}")
        time.sleep(interval)


@contextmanager
def search_api(settings: Settings) -> Iterator[Any]:
    """The API app searching under ``settings``, as a TestClient; its ES client closed after."""
    from fastapi.testclient import TestClient

    from api.routes_search import search_settings
    from api.server import create_app

    app = create_app()
    app.dependency_overrides[search_settings] = lambda: settings
    with TestClient(app) as c:
        yield c
    es = getattr(app.state, "search_es", None)
    if es is not None:
        es.close()
