"""A starting worker waits for Kafka / Elasticsearch with backoff, and gives up at its limit."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.worker import retry


class Down(Exception):
    pass


class Clock:
    """Pretend time: sleeping advances it, so no test waits."""

    def __init__(self) -> None:
        self.now, self.slept = 0.0, []

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s

    def retry(self, step: Callable[[], None], wait_s: float) -> None:
        retry(step, "engine", (Down,), wait_s, sleep=self.sleep, clock=lambda: self.now)


def failing(exc: Exception, times: int = 10**9) -> Callable[[], None]:
    calls = []

    def step() -> None:
        calls.append(1)
        if len(calls) <= times:
            raise exc

    return step


def test_retries_with_doubling_backoff_until_the_engine_answers() -> None:
    c = Clock()
    c.retry(failing(Down("connection refused"), times=6), 300)
    assert c.slept == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]  # capped at 10 s


def test_gives_up_at_the_limit_with_the_engines_error() -> None:
    c = Clock()
    with pytest.raises(Down):
        c.retry(failing(Down("connection refused")), 20)
    assert sum(c.slept) <= 20 and c.slept[-1] == 8.0


def test_other_errors_are_not_retried() -> None:
    c = Clock()
    with pytest.raises(ValueError):
        c.retry(failing(ValueError("bad template")), 300)
    assert c.slept == []


def test_worker_refuses_an_unknown_log_level_before_starting() -> None:
    from typer.testing import CliRunner

    from app.cli import app

    result = CliRunner().invoke(app, ["worker", "--loglevel", "loud"])
    assert result.exit_code == 2
    assert "--loglevel" in result.output and "loud" in result.output
