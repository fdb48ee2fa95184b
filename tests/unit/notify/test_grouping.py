"""Alert storms: group_by labels, idempotent adds, and digest groups that survive a restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notify.digest_store import DigestStore
from notify.lifecycle import DigestGrouper, LifecycleTracker, Notification, group_labels
from notify.match_agent import delivery_message
from notify.subscriptions import Subscription
from streams.alerts import Alert

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
S = timedelta(seconds=1)


def alert(holder: str, rule: str = "drawdown-30", direction: str = "down", i: int = 0) -> Alert:
    return Alert(
        rule=rule,
        holder=holder,
        ts=T0 + i * S,
        direction=direction,
        value_usd=1e9,
        threshold_usd=2e9,
        price=60_000.0,
        btc=10_000.0,
    )


def sub(**kw: Any) -> Subscription:
    return Subscription.model_validate(
        {
            "name": "ops",
            "channel": {"type": "email", "address": "ops@example.org"},
            "group_wait": "10s",
            "group_interval": "1m",
            **kw,
        }
    )


def storm(tracker: LifecycleTracker, n: int = 15) -> list[Notification]:
    out: list[Notification] = []
    for i in range(n):
        out.extend(tracker.observe(alert(f"H{i}", i=i), T0 + i * S))
    return out


def grouped(s: Subscription, notes: list[Notification]) -> list[tuple[str, list[Notification]]]:
    g: DigestGrouper[Notification] = DigestGrouper.for_subscriptions({s.id: s})
    for n in notes:
        g.add(n.subscription, n, n.at, group=group_labels(n, s.group_by), key=n.delivery_id)
    return g.due(T0 + 3600 * S)


def test_a_storm_of_one_rule_is_one_notification_listing_every_holder() -> None:
    s = sub()
    notes = storm(LifecycleTracker([s]))
    assert len(notes) == 15
    out = grouped(s, notes)
    assert len(out) == 1 and out[0][0] == s.id
    assert sorted(n.alert.holder for n in out[0][1]) == sorted(f"H{i}" for i in range(15))


def test_group_by_splits_by_its_labels_only() -> None:
    s = sub(group_by=["rule", "direction"])
    tr = LifecycleTracker([s])
    notes = storm(tr, 3) + tr.observe(alert("H0", rule="level-1", i=20), T0 + 20 * S)
    assert len(grouped(s, notes)) == 2  # drawdown-30 down, level-1 down
    per_holder = sub(group_by=["holder"])
    tr = LifecycleTracker([per_holder])
    notes = storm(tr, 3)
    assert len(grouped(per_holder, notes)) == 3
    everything = sub(group_by=[])
    tr = LifecycleTracker([everything])
    notes = storm(tr, 3) + tr.observe(alert("H0", rule="level-1", i=20), T0 + 20 * S)
    assert len(grouped(everything, notes)) == 1


def test_events_group_apart_from_alerts() -> None:
    n = LifecycleTracker([sub()]).observe(alert("H0"), T0)[0]
    assert group_labels({"id": "e1"}, ("rule", "direction")) != group_labels(n, ("rule",))


def test_group_by_is_validated_and_stored() -> None:
    with pytest.raises(ValueError):
        sub(group_by=["price"])
    s = sub(group_by=["holder", "rule"])
    assert Subscription.from_es_doc(s.to_es_doc()).group_by == ("holder", "rule")
    assert sub().group_by == ("rule", "direction")


def test_adding_an_item_twice_keeps_one() -> None:
    g: DigestGrouper[str] = DigestGrouper()
    assert g.add("s", "a", T0, key="a") and not g.add("s", "a", T0 + S, key="a")
    assert g.due(T0 + 10 * S) == [("s", ["a"])]


class Sent:
    def __init__(self, fail: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail = fail

    async def __call__(self, sid: str, msg: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("kafka down")
        self.messages.append(msg)


async def _noop() -> None:
    return None


def store(table: dict[bytes, Any], s: Subscription, sent: Sent) -> DigestStore:
    subs = {s.id: s}
    ds = DigestStore(
        table,
        DigestGrouper.for_subscriptions(subs),
        subs,
        compose=delivery_message,
        send=sent,
        flush_producer=_noop,
    )
    ds.load()
    return ds


def test_groups_and_story_memory_survive_a_restart() -> None:
    s, table = sub(), {}
    first = store(table, s, Sent())
    for n in storm(LifecycleTracker([s]), 4):
        first.add_notification(n, T0)
    first.add_event(s, {"id": "e1", "cluster_id": "c1", "title": "IMF"}, T0)
    first.persist()
    # Crash: a new store reads the same table (what Faust restores from the changelog).
    sent = Sent()
    second = store(table, s, sent)
    assert len(second.grouper) == 5
    second.add_event(s, {"id": "e2", "cluster_id": "c1", "title": "IMF copy"}, T0)  # same story
    second.add_notification(storm(LifecycleTracker([s]), 1)[0], T0)  # replayed: same key
    asyncio.run(second.flush(T0 + 10 * S))
    kinds = sorted(m["kind"] for m in sent.messages)
    assert kinds == ["digest", "event"]
    alerts = next(m for m in sent.messages if m["kind"] == "digest")
    assert len(alerts["items"]) == 4
    assert not [k for k in table if k.startswith(b"outbox")]


def test_an_unsent_outbox_is_resent_as_the_same_message() -> None:
    s, table = sub(), {}
    down = store(table, s, Sent(fail=True))
    for n in storm(LifecycleTracker([s]), 3):
        down.add_notification(n, T0)
    down.persist()
    asyncio.run(down.flush(T0 + 10 * S))  # Kafka refuses: the digest waits in the outbox
    stored = [v for k, v in table.items() if k.startswith(b"outbox")]
    assert len(stored) == 1 and stored[0]["v"] == 1  # a versioned record (state_versions)
    waiting = [{k: v for k, v in stored[0].items() if k != "v"}]
    sent = Sent()
    again = store(table, s, sent)  # restart
    asyncio.run(again.flush(T0 + 11 * S))
    assert sent.messages == waiting  # the very same message: same id, same items
    assert len(sent.messages[0]["items"]) == 3
    assert not [k for k in table if k.startswith(b"outbox")] and len(again.grouper) == 0


def test_cli_subscribe_sends_the_grouping_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from app import cli

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(cli, "_api", lambda method, path, json: sent.append(json) or json)
    args = ["subscribe", "--name", "x", "--email", "ops@example.org", "--group-wait", "30s"]
    args += ["--group-interval", "5m", "--group-by", "rule", "--group-by", "holder"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert sent[0]["group_wait"] == "30s" and sent[0]["group_interval"] == "5m"
    assert sent[0]["group_by"] == ["rule", "holder"]


def test_unversioned_records_of_an_older_release_are_resumed() -> None:
    # What a release before state versions left in the table: bare numbers and plain objects.
    s, table = sub(), {}
    old = store(table, s, Sent(fail=True))
    for n in storm(LifecycleTracker([s]), 2):
        old.add_notification(n, T0)
    old.add_event(s, {"id": "e1", "cluster_id": "c1", "title": "IMF"}, T0)
    old.persist()
    for key, value in list(table.items()):
        if key.startswith(b"sent"):
            table[key] = value["at"]
        else:
            table[key] = {k: v for k, v in value.items() if k != "v"}
    sent = Sent()
    again = store(table, s, sent)
    again.load()
    assert len(again.grouper) == 3
    again.add_event(s, {"id": "e2", "cluster_id": "c1", "title": "IMF copy"}, T0)  # known story
    asyncio.run(again.flush(T0 + 10 * S))
    assert sum(len(m["items"]) for m in sent.messages) == 3
