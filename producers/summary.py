"""Bookkeeping shared by every producer: what was sent, what was skipped and why, how fast.

Bad input never stops a producer: each reader yields a ``Bad`` for a row or entry it cannot
use, the command counts it, prints where it was, dead-letters it and carries on.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape

MAX_PRINTED_ERRORS = 20  # past this, bad rows are only counted: a broken file must not flood stderr


@dataclass(frozen=True)
class Bad:
    """One unusable input item: where it was (file:line or feed#entry), a short kind, details."""

    where: str
    kind: str
    detail: str
    payload: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


@dataclass
class Summary:
    """Counters for one producer run, printed as a one-screen summary at the end."""

    what: str
    sent: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    _printed: int = 0

    def skip(self, bad: Bad, console: Console | None = None) -> None:
        self.skipped[bad.kind] += 1
        if console is None:
            return
        if self._printed < MAX_PRINTED_ERRORS:
            line = f"[yellow]skipped[/yellow] {escape(str(bad))}"
            console.print(line, highlight=False, soft_wrap=True)
        elif self._printed == MAX_PRINTED_ERRORS:
            console.print("[yellow]further skipped items are only counted[/yellow]")
        self._printed += 1

    def skip_reason(self, kind: str, n: int = 1) -> None:
        """Count items skipped on purpose (duplicates, already seen) without printing them."""
        self.skipped[kind] += n

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed

    def line(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) or "none"
        total = sum(self.skipped.values())
        return (
            f"{self.what}: sent {self.sent}, skipped {total} ({reasons}), "
            f"{self.rate:,.0f} records/s over {self.elapsed:.2f}s"
        )

    def render(self, console: Console) -> None:
        console.print(escape(self.line()), highlight=False, soft_wrap=True)
