from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from notify.lifecycle import DigestGrouper, LifecycleTracker
from notify.subscriptions import Subscription
from streams.alerts import Alert, Direction

T0 = datetime(2024, 3, 5, 12, tzinfo=UTC)
S = timedelta(seconds=1)
RULE_TYPES = {"lvl": "level", "dd": "drawdown"}


def sub(name: str, **kw: Any) -> Subscription:
    channel = {"type": "email", "address": f"{name}@example.org"}
    return Subscription.model_validate({"id": name, "name": name, "channel": channel, **kw})


def alert(
    direction: Direction, at: datetime = T0, rule: str = "lvl", holder: str = "acme"
) -> Alert:
    return Alert(rule, holder, at, direction, 9e8, 1e9, 6e4, 15e3)


def kinds(notes: list[Any]) -> list[tuple[str, str]]:
    return [(n.subscription, n.kind) for n in notes]


def test_firing_goes_to_matching_subscribers_only() -> None:
    tracker = LifecycleTracker(
        [
            sub("all"),
            sub("other", filters={"holders": ["globex"]}),
            sub("dd", filters={"rule_types": ["drawdown"]}),
        ],
        RULE_TYPES,
    )
    a = alert("down")
    notes = tracker.observe(a, T0)
    assert kinds(notes) == [("all", "firing")]
    assert notes[0].incident == a.fingerprint and notes[0].alert == a
    assert kinds(tracker.observe(alert("down", rule="dd"), T0)) == [
        ("all", "firing"),
        ("dd", "firing"),
    ]


def test_duplicate_fingerprint_is_suppressed_and_recorded() -> None:
    tracker = LifecycleTracker([sub("s")])
    assert len(tracker.observe(alert("down"), T0)) == 1
    assert tracker.observe(alert("down"), T0 + S) == []  # Kafka redelivery of the same crossing
    (dup,) = tracker.drain_suppressed()
    assert (dup.reason, dup.subscription, dup.fingerprint) == (
        "duplicate",
        None,
        alert("down").fingerprint,
    )
    assert tracker.drain_suppressed() == []


def test_realert_after_window_while_still_firing() -> None:
    tracker = LifecycleTracker([sub("s", realert_window="1h"), sub("q", realert_window="3h")])
    tracker.observe(alert("down"), T0)
    assert tracker.tick(T0 + timedelta(minutes=59)) == []
    notes = tracker.tick(T0 + timedelta(hours=1))
    assert kinds(notes) == [("s", "realert")]
    assert tracker.tick(T0 + timedelta(hours=1, minutes=30)) == []
    assert kinds(tracker.tick(T0 + timedelta(hours=3))) == [("s", "realert"), ("q", "realert")]
    ids = {n.delivery_id for n in notes + tracker.tick(T0 + timedelta(hours=4))}
    assert len(ids) == 2  # each re-alert has its own idempotency key


def test_resolution_sent_once_then_no_more_realerts() -> None:
    tracker = LifecycleTracker([sub("s")])
    down = alert("down")
    tracker.observe(down, T0)
    up = alert("up", T0 + timedelta(minutes=5))
    notes = tracker.observe(up, T0 + timedelta(minutes=5))
    # The rise resolves the "down" incident and opens the "up" one (two-sided rule).
    assert kinds(notes) == [("s", "resolved"), ("s", "firing")]
    resolved = notes[0]
    assert resolved.incident == down.fingerprint and resolved.alert == up
    assert tracker.observe(up, T0 + timedelta(minutes=6)) == []  # replayed: not resolved twice
    assert [a.direction for a in tracker.open_incidents()] == ["up"]
    later = tracker.tick(T0 + timedelta(hours=2))
    assert [(n.kind, n.alert.direction) for n in later] == [("realert", "up")]


def test_one_sided_rule_new_crossing_replaces_the_incident() -> None:
    tracker = LifecycleTracker([sub("s")])
    tracker.observe(alert("down"), T0)
    second = alert("down", T0 + timedelta(days=1))
    assert kinds(tracker.observe(second, T0 + timedelta(days=1))) == [("s", "firing")]
    assert tracker.open_incidents() == [second]


def test_silence_suppresses_then_owed_firing_arrives_when_it_ends() -> None:
    until = T0 + timedelta(minutes=30)
    tracker = LifecycleTracker([sub("quiet", silence_until=until), sub("loud")])
    notes = tracker.observe(alert("down"), T0)
    assert kinds(notes) == [("loud", "firing")]
    (rec,) = tracker.drain_suppressed()
    assert (rec.subscription, rec.reason, rec.kind) == ("quiet", "silenced", "firing")
    assert tracker.tick(T0 + timedelta(minutes=29)) == []
    assert kinds(tracker.tick(until)) == [("quiet", "firing")]


def test_no_resolution_for_what_was_never_announced() -> None:
    tracker = LifecycleTracker([sub("quiet", silence_until=T0 + timedelta(days=1))])
    tracker.observe(alert("down"), T0)
    assert tracker.observe(alert("up", T0 + S), T0 + S) == []
    assert [r.kind for r in tracker.drain_suppressed()] == ["firing", "firing"]


def test_resolution_during_silence_is_suppressed() -> None:
    s = sub("s")
    tracker = LifecycleTracker([s])
    tracker.observe(alert("down"), T0)
    tracker.set_subscriptions([s.model_copy(update={"silence_until": T0 + timedelta(hours=1)})])
    assert tracker.observe(alert("up", T0 + S), T0 + S) == []
    assert {(r.kind, r.reason) for r in tracker.drain_suppressed()} == {
        ("resolved", "silenced"),
        ("firing", "silenced"),
    }


def test_state_round_trips_through_json() -> None:
    subs = [sub("s"), sub("quiet", silence_until=T0 + timedelta(minutes=10))]
    tracker = LifecycleTracker(subs)
    tracker.observe(alert("down"), T0)
    state = json.loads(json.dumps(tracker.to_dict()))
    restored = LifecycleTracker(subs, state=state)
    assert restored.to_dict() == tracker.to_dict()
    assert restored.observe(alert("down"), T0 + S) == []  # still knows the fingerprint
    assert kinds(restored.tick(T0 + timedelta(hours=1))) == [("s", "realert"), ("quiet", "firing")]


def test_state_is_bounded() -> None:
    tracker = LifecycleTracker([sub("s")], max_incidents=2, max_seen=3)
    for i, holder in enumerate(["a", "b", "c", "d"]):
        tracker.observe(alert("down", T0 + i * S, holder=holder), T0)
    assert [a.holder for a in tracker.open_incidents()] == ["c", "d"]
    assert len(tracker.to_dict()["seen"]) == 3


def test_removed_subscription_gets_nothing_more() -> None:
    tracker = LifecycleTracker([sub("s")])
    tracker.observe(alert("down"), T0)
    tracker.set_subscriptions([])
    assert tracker.tick(T0 + timedelta(days=1)) == []
    assert tracker.observe(alert("up", T0 + S), T0 + S) == []


# ---------------------------------------------------------------- digests


def test_digest_group_wait_then_group_interval_then_close() -> None:
    g: DigestGrouper[str] = DigestGrouper()  # defaults: wait 10s, interval 1m
    g.add("s", "a", T0)
    assert g.next_due() == T0 + 10 * S
    assert g.due(T0 + 9 * S) == []
    assert g.due(T0 + 10 * S) == [("s", ["a"])]
    g.add("s", "b", T0 + 20 * S)
    g.add("s", "c", T0 + 30 * S)
    assert g.due(T0 + 69 * S) == []  # batched until the interval after the last flush ends
    assert g.due(T0 + 70 * S) == [("s", ["b", "c"])]
    assert g.due(T0 + 130 * S) == []  # a quiet interval closes the group
    assert g.next_due() is None
    g.add("s", "d", T0 + 200 * S)
    assert g.due(T0 + 209 * S) == [] and g.due(T0 + 210 * S) == [("s", ["d"])]


def test_late_item_after_a_quiet_interval_waits_group_wait_not_zero() -> None:
    g: DigestGrouper[str] = DigestGrouper()
    g.add("s", "a", T0)
    g.due(T0 + 10 * S)
    g.add("s", "b", T0 + 500 * S)  # due() was not called in between
    assert g.due(T0 + 500 * S) == [] and g.due(T0 + 510 * S) == [("s", ["b"])]


def test_digest_per_subscriber_timings_and_independence() -> None:
    subs = {s.id: s for s in [sub("now", group_wait="0s", group_interval="5m"), sub("slow")]}
    g: DigestGrouper[int] = DigestGrouper.for_subscriptions(subs)
    g.add("now", 1, T0)
    g.add("slow", 2, T0)
    assert g.due(T0) == [("now", [1])]
    g.add("now", 3, T0 + S)
    assert g.due(T0 + 10 * S) == [("slow", [2])]
    assert g.due(T0 + 300 * S) == [("now", [3])]
    assert len(g) == 0


def test_full_group_is_due_at_once() -> None:
    g: DigestGrouper[int] = DigestGrouper(max_items=3)
    for i in range(3):
        g.add("s", i, T0)
    assert g.due(T0) == [("s", [0, 1, 2])]
