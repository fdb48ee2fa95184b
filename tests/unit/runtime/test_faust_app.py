"""The worker's Faust app takes its table standby count from the settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cpwatch.settings import Settings
from runtime.faust_app import create_app


@pytest.mark.parametrize(("env", "expected"), [(None, 0), ("1", 1), ("2", 2)])
def test_standby_replicas_follow_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str | None, expected: int
) -> None:
    if env is not None:
        monkeypatch.setenv("CPWATCH_STANDBY_REPLICAS", env)

    async def main() -> int:
        app, _ = create_app(Settings(home=tmp_path))
        # The partition assignor places this many standby copies of each table partition.
        return int(app.assignor.replicas)

    assert asyncio.run(main()) == expected


def test_a_negative_standby_count_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPWATCH_STANDBY_REPLICAS", "-1")
    with pytest.raises(ValueError, match="standby_replicas"):
        Settings()
