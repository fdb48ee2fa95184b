"""Pins producers.pacing and producers.summary."""

from __future__ import annotations

import io
import threading
import time
from datetime import UTC, datetime, timedelta

from rich.console import Console

from producers.pacing import Pacer
from producers.summary import MAX_PRINTED_ERRORS, Bad, Summary

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_rate_zero_never_waits() -> None:
    pacer = Pacer(0)
    start = time.monotonic()
    for day in range(1000):
        assert pacer.wait_until(T0 + timedelta(days=day))
    assert time.monotonic() - start < 0.5


def test_waits_scale_with_data_gaps() -> None:
    pacer = Pacer(10.0)  # 10 data seconds per wall second
    start = time.monotonic()
    pacer.wait_until(T0)
    pacer.wait_until(T0 + timedelta(seconds=1))
    pacer.wait_until(T0 + timedelta(seconds=0.5))  # going backwards: no wait
    pacer.wait_until(T0 + timedelta(seconds=2))
    assert 0.18 <= time.monotonic() - start < 0.6


def test_stop_interrupts_a_long_wait() -> None:
    stop = threading.Event()
    pacer = Pacer(1.0, stop)
    pacer.wait_until(T0)
    threading.Timer(0.05, stop.set).start()
    start = time.monotonic()
    assert pacer.wait_until(T0 + timedelta(hours=1)) is False
    assert time.monotonic() - start < 1.0


def test_summary_counts_reasons_and_caps_printing() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)
    summary = Summary("ticks")
    summary.sent = 10
    for i in range(MAX_PRINTED_ERRORS + 5):
        summary.skip(Bad(f"f.csv:{i}", "invalid field", "field 'close': missing"), console)
    summary.skip_reason("already sent", 3)
    text = out.getvalue()
    assert "f.csv:0: field 'close': missing" in text
    assert f"f.csv:{MAX_PRINTED_ERRORS + 1}:" not in text
    assert "only counted" in text
    line = summary.line()
    assert "sent 10" in line and "skipped 28" in line
    assert "already sent: 3" in line and "invalid field: 25" in line and "records/s" in line
