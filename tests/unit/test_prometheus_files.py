"""deploy/prometheus: the scrape config and alert rules pass promtool, and the rules' own
unit tests (rules_test.yml) pass. promtool comes from Debian's ``prometheus`` package
(``make setup`` installs it); without it these tests fail rather than skip."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import cpwatch.metrics  # noqa: F401 - registers every cpwatch_* series

PROM_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: apt-get install prometheus (make setup does)")
    return subprocess.run(  # noqa: S603 - fixed argv
        [binary, *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "rules", "rules.yml"),
        ("test", "rules", "rules_test.yml"),
        ("check", "config", "prometheus.yml"),
    ],
    ids=["check-rules", "test-rules", "check-config"],
)
def test_promtool(args: tuple[str, ...]) -> None:
    proc = promtool(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_rules_only_use_series_cpwatch_exports() -> None:
    exported = {name for m in REGISTRY.collect() for name in (m.name, f"{m.name}_total")}
    used = set(re.findall(r"\bcpwatch_[a-z_]+", (PROM_DIR / "rules.yml").read_text()))
    assert used, "rules.yml names no cpwatch series"
    assert used <= exported, f"unknown series in rules.yml: {sorted(used - exported)}"
