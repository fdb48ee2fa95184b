"""Venue events of a treasury batch: every one counted, a bounded number logged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from cpwatch import metrics
from streams.refprice import VenueEvent
from streams.treasury_agent import VENUE_LOG_LINES, _report
from streams.treasury_processor import BatchOutput

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _event(i: int, kind: str) -> VenueEvent:
    ts = T0 + timedelta(seconds=10 * i)
    return VenueEvent(kind, "ETH-USD", "va", ts, ts, 3_000.0 + i, 3_000.0, 2.5)  # type: ignore[arg-type]


def _count(kind: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "cpwatch_venue_events_total", {"symbol": "ETH-USD", "venue": "va", "kind": kind}
    )
    return value or 0.0


def test_a_flood_is_counted_in_full_and_logged_in_part(caplog: pytest.LogCaptureFixture) -> None:
    kinds = ["diverging", "recovered"] * 30
    before = {k: _count(k) for k in set(kinds)}
    out = BatchOutput(venue_events=[_event(i, k) for i, k in enumerate(kinds)])
    with caplog.at_level(logging.WARNING, logger="streams.treasury_agent"):
        _report(out)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == VENUE_LOG_LINES + 1
    assert all(line.startswith('venue {"kind"') for line in lines[:VENUE_LOG_LINES])
    rest = len(kinds) - VENUE_LOG_LINES
    assert lines[-1] == f"venue: {rest} more events in this batch (diverging 25, recovered 25)"
    assert {k: _count(k) - before[k] for k in before} == {"diverging": 30, "recovered": 30}


def test_a_few_events_are_each_logged(caplog: pytest.LogCaptureFixture) -> None:
    out = BatchOutput(venue_events=[_event(0, "stale"), _event(1, "recovered")])
    with caplog.at_level(logging.WARNING, logger="streams.treasury_agent"):
        _report(out)
    assert [r.getMessage()[:14] for r in caplog.records] == ['venue {"kind":'] * 2
