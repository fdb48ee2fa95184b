"""Every setting is documented in docs/operations.md, so a new one cannot go unexplained."""

from __future__ import annotations

from pathlib import Path

from cpwatch.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_every_setting_is_in_the_operations_guide() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [n for n in Settings.model_fields if f"`CPWATCH_{n.upper()}`" not in text]
    assert missing == []
