"""How alerts are counted as firing and worded: below-cost compares price with cost per coin."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from notify.delivery import item_dict, summarize
from notify.lifecycle import LifecycleTracker
from notify.senders import items_from_message
from notify.subscriptions import Subscription
from streams.alerts import Alert, firing, measure

TS = datetime(2026, 2, 5, tzinfo=UTC)
# value 762,099 BTC x $62,000 = $47.2B; threshold = average cost $75,694 per BTC
BELOW = Alert(
    "below-cost", "Strategy (MicroStrategy)", TS, "down", 47.25e9, 75_694, 62_000, 762_099
)
HOOK = {"type": "webhook", "url": "https://hooks.example.org/in", "secret": "s" * 16}


def test_measure_per_rule_type() -> None:
    assert measure("below_cost") == "price"
    assert [measure(t) for t in ("level", "pct_move", "drawdown", None)] == ["value"] * 4


def test_firing_is_the_latest_crossing_per_rule_and_holder_unless_acked() -> None:
    a = {"rule": "r", "holder": "h", "ts": "2025-01-01T00:00:00Z", "direction": "down"}
    b = {**a, "ts": "2025-01-01T00:00:00.500000Z", "direction": "up"}  # later, with a fraction
    other = {**a, "holder": "g", "acked_at": "2025-01-02T00:00:00Z"}
    assert firing([b, a, other]) == [b]
    assert firing([a, b]) == [b]
    assert firing([]) == []


def test_below_cost_notification_says_price_versus_cost_per_coin() -> None:
    sub = Subscription(name="all", channel=HOOK)
    tracker = LifecycleTracker([sub], {"below-cost": "below_cost"})
    (note,) = tracker.observe(BELOW, TS)
    assert note.rule_type == "below_cost"
    title = summarize(note).title
    assert "BTC price $62,000 crossed down the average cost $75,694 per BTC" in title
    assert "47,250,000,000" not in title
    facts = dict(summarize(note).facts)
    assert facts["average cost per BTC"] == "$75,694.00" and facts["BTC price"] == "$62,000.00"
    # the rule type survives the deliveries topic; the delivery id does not depend on it
    (back,) = items_from_message([item_dict(note)])
    assert back == note
    assert note.delivery_id == replace(note, rule_type=None).delivery_id
