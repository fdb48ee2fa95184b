"""Notify's processors as (state, batch) -> (state, outputs): lifecycle + digests for batches of
alerts, matched events -> digest items, crash points and replays."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cpwatch import state_versions as sv
from cpwatch.records import dumps
from notify.alert_processor import (
    STATE_KEY,
    AlertOutput,
    AlertProcessor,
    DigestBook,
    LifecycleState,
    SubscriptionSets,
    TableWrite,
    add_matches,
    parse_events,
)
from notify.lifecycle import DigestGrouper
from notify.senders import items_from_message
from notify.subscriptions import Subscription
from streams.alerts import Alert

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
S = timedelta(seconds=1)
RULE_TYPES = {"dd-30": "drawdown", "level-1b": "level"}


def sub(name: str = "ops", **kw: Any) -> Subscription:
    return Subscription.model_validate(
        {
            "name": name,
            "channel": {"type": "email", "address": f"{name}@example.org"},
            "group_wait": "10s",
            "group_interval": "1m",
            "realert_window": "1h",
            **kw,
        }
    )


def alert(holder: str, rule: str = "dd-30", direction: str = "down", i: int = 0) -> bytes:
    a = Alert(
        rule=rule,
        holder=holder,
        ts=T0 + i * S,
        direction=direction,  # type: ignore[arg-type]
        value_usd=1e9,
        threshold_usd=2e9,
        price=60_000.0,
        btc=10_000.0,
    )
    return dumps(a.to_message())


def book(subs: list[Subscription]) -> DigestBook:
    by_id = {s.id: s for s in subs}
    return DigestBook(DigestGrouper.for_subscriptions(by_id), by_id, max_sent=1_000)


def apply(table: dict[bytes, Any], writes: list[TableWrite]) -> None:
    """What the agent does with the writes (runtime: the ``alert-lifecycle`` Faust table)."""
    for key, record in writes:
        if record is None:
            table.pop(key, None)
        else:
            table[key] = record


def _decode(raw: Any) -> Any:
    return items_from_message([raw])[0]


def restart(table: dict[bytes, Any], subs: list[Subscription]) -> tuple[LifecycleState, DigestBook]:
    """A new worker: the table through Faust's JSON codec, tracker and digests read back."""
    rows = {k: json.loads(json.dumps(v)) for k, v in table.items()}
    digests = book(subs)
    assert digests.restore(rows.items(), _decode) == {}  # no outbox in these tests
    return AlertProcessor(RULE_TYPES).from_record(rows.get(STATE_KEY), subs), digests


def digest_rows(table: dict[bytes, Any]) -> dict[bytes, Any]:
    return {k: v for k, v in table.items() if k != STATE_KEY}


def delivery_ids(out: AlertOutput) -> list[str]:
    return [n.delivery_id for n in out.notifications]


# ------------------------------------------------------------------ alerts -> lifecycle


def test_a_batch_of_alerts_owes_firings_and_writes_digests_before_the_tracker() -> None:
    subs = [sub()]
    p = AlertProcessor(RULE_TYPES)
    st, digests = p.from_record(None, subs), book(subs)
    out = p.process(st, digests, [alert("H1"), alert("H2", i=1)], subs, T0)
    assert [(n.kind, n.alert.holder) for n in out.notifications] == [
        ("firing", "H1"),
        ("firing", "H2"),
    ]
    assert len(digests.grouper) == 2 and out.rejected == []
    keys = [k for k, _ in out.writes]
    assert keys[-1] == STATE_KEY and all(k.startswith(b"digest") for k in keys[:-1])
    assert len(keys) == 2  # one group (same rule and direction), then the tracker
    record = out.writes[-1][1]
    assert record["v"] == sv.current("lifecycle") and len(record["seen"]) == 2


def test_a_resolution_goes_to_those_told_it_was_firing() -> None:
    subs = [sub()]
    p = AlertProcessor(RULE_TYPES)
    st, digests = p.from_record(None, subs), book(subs)
    p.process(st, digests, [alert("H1", rule="level-1b")], subs, T0)
    out = p.process(st, digests, [alert("H1", rule="level-1b", direction="up", i=5)], subs, T0)
    assert [n.kind for n in out.notifications] == ["resolved", "firing"]


def test_malformed_alerts_are_reasons_and_write_nothing() -> None:
    subs = [sub()]
    p = AlertProcessor(RULE_TYPES)
    st, digests = p.from_record(None, subs), book(subs)
    before = st.to_record()
    out = p.process(st, digests, [b"{", b'{"rule": "x"}', None], subs, T0)
    assert [i for i, _ in out.rejected] == [0, 1, 2]
    assert out.writes == [] and out.notifications == [] and st.to_record() == before
    mixed = p.process(st, digests, [b"[]", alert("H1")], subs, T0)
    assert [i for i, _ in mixed.rejected] == [0] and len(mixed.notifications) == 1


def test_a_replayed_batch_changes_nothing() -> None:
    subs = [sub()]
    p = AlertProcessor(RULE_TYPES)
    st, digests, table = p.from_record(None, subs), book(subs), {}
    batch = [alert("H1"), alert("H2", i=1), alert("H1", rule="level-1b", i=2)]
    apply(table, p.process(st, digests, batch, subs, T0).writes)
    before, items = dict(table), len(digests.grouper)
    again = p.process(st, digests, batch, subs, T0 + 30 * S)
    assert again.notifications == []  # duplicates: their fingerprints are remembered
    assert {s.reason for s in again.suppressed} == {"duplicate"}
    assert len(digests.grouper) == items
    assert [k for k, _ in again.writes] == [STATE_KEY]  # no digest changed
    apply(table, again.writes)
    assert table == before


ALERT_BATCHES = [
    [alert("H1"), alert("H2", i=1)],
    [alert("H3", i=2), b"garbage", alert("H1", i=3)],  # H1 again: a replay by the producer
    [alert("H1", rule="level-1b", i=4), alert("H2", rule="level-1b", i=5)],
    [alert("H1", rule="level-1b", direction="up", i=6)],
]


def run_alerts(
    batches: list[list[bytes]],
    st: LifecycleState,
    digests: DigestBook,
    table: dict[bytes, Any],
    subs: list[Subscription],
    start: int = 0,
) -> list[AlertOutput]:
    p, outs = AlertProcessor(RULE_TYPES), []
    for n, batch in enumerate(batches, start):
        out = p.process(st, digests, batch, subs, T0 + n * S)
        apply(table, out.writes)
        outs.append(out)
    return outs


@pytest.mark.parametrize("k", range(1, len(ALERT_BATCHES)))
def test_a_crash_after_batch_k_resumes_from_the_table(k: int) -> None:
    subs = [sub(), sub("risk", group_by=["holder"])]
    p = AlertProcessor(RULE_TYPES)
    whole_table: dict[bytes, Any] = {}
    whole = run_alerts(ALERT_BATCHES, p.from_record(None, subs), book(subs), whole_table, subs)

    table: dict[bytes, Any] = {}
    run_alerts(ALERT_BATCHES[:k], p.from_record(None, subs), book(subs), table, subs)
    st, digests = restart(table, subs)
    # The last batch comes again (its offsets were not committed), then the rest.
    replayed = run_alerts(ALERT_BATCHES[k - 1 :], st, digests, table, subs, start=k - 1)
    assert replayed[0].notifications == []
    assert [delivery_ids(o) for o in replayed[1:]] == [delivery_ids(o) for o in whole[k:]]
    assert digest_rows(table) == digest_rows(whole_table)
    assert table[STATE_KEY] == whole_table[STATE_KEY]


@pytest.mark.parametrize("k", range(len(ALERT_BATCHES)))
def test_a_crash_between_the_digests_and_the_tracker_loses_nothing(k: int) -> None:
    # Batch k's digest rows reached the table, its tracker record did not: the replay owes
    # the same notifications again, and the groups keep each once.
    subs = [sub()]
    p = AlertProcessor(RULE_TYPES)
    whole_table: dict[bytes, Any] = {}
    whole = run_alerts(ALERT_BATCHES, p.from_record(None, subs), book(subs), whole_table, subs)

    table: dict[bytes, Any] = {}
    st, digests = p.from_record(None, subs), book(subs)
    run_alerts(ALERT_BATCHES[:k], st, digests, table, subs)
    cut = p.process(st, digests, ALERT_BATCHES[k], subs, T0 + k * S)
    assert cut.writes[-1][0] == STATE_KEY
    apply(table, cut.writes[:-1])
    st, digests = restart(table, subs)
    rest = run_alerts(ALERT_BATCHES[k:], st, digests, table, subs, start=k)
    assert delivery_ids(rest[0]) == delivery_ids(whole[k])  # owed again ...
    assert table == whole_table  # ... and held once


def test_the_order_matters_a_tracker_saved_without_its_digests_loses_the_items() -> None:
    # Why the tracker's record is the last write: written first and the digests lost, the
    # replayed alerts are duplicates and their notifications are gone.
    subs = [sub()]
    p = AlertProcessor(RULE_TYPES)
    st, digests, table = p.from_record(None, subs), book(subs), {}
    out = p.process(st, digests, ALERT_BATCHES[0], subs, T0)
    apply(table, out.writes[-1:])
    st, digests = restart(table, subs)
    again = p.process(st, digests, ALERT_BATCHES[0], subs, T0)
    assert again.notifications == [] and len(digests.grouper) == 0


def test_realerts_are_due_after_the_window_and_a_repeated_tick_adds_none() -> None:
    subs = [sub()]
    p = AlertProcessor(RULE_TYPES)
    st, digests, table = p.from_record(None, subs), book(subs), {}
    apply(table, p.process(st, digests, [alert("H1")], subs, T0).writes)
    early = p.tick(st, digests, subs, T0 + timedelta(minutes=30))
    assert early.notifications == [] and early.writes == []
    due = p.tick(st, digests, subs, T0 + timedelta(hours=1))
    assert [n.kind for n in due.notifications] == ["realert"]
    assert due.writes[-1][0] == STATE_KEY and len(due.writes) == 2
    apply(table, due.writes)
    again = p.tick(st, digests, subs, T0 + timedelta(hours=1))
    assert again.notifications == [] and again.writes == []
    # After a crash the restored tracker knows the realert was owed already.
    st, digests = restart(table, subs)
    assert p.tick(st, digests, subs, T0 + timedelta(hours=1, minutes=1)).notifications == []


def test_the_lifecycle_record_of_every_version_up_to_today_is_read() -> None:
    subs = [sub()]
    p = AlertProcessor(RULE_TYPES)
    st = p.from_record(None, subs)
    p.process(st, book(subs), [alert("H1")], subs, T0)
    record = st.to_record()
    old = {k: v for k, v in record.items() if k != "v"}  # as written before state versions
    for stored in (record, old):
        again = p.from_record(json.loads(json.dumps(stored)), subs)
        assert again.to_record() == record
    with pytest.raises(sv.StateVersionError, match="upgrade the worker"):
        p.from_record({**record, "v": 2}, subs)


def test_fields_migrates_and_strips_the_version() -> None:
    assert sv.fields("digest-sent", 12.5) == {"at": 12.5}
    assert sv.fields("digest-sent", {"v": 1, "at": 3.0}) == {"at": 3.0}
    assert sv.fields("lifecycle", None) is None
    with pytest.raises(sv.StateVersionError):
        sv.fields("lifecycle", {"v": 9})


# ------------------------------------------------------------------ events -> digests


def doc(i: int, cluster: str | None = None) -> dict[str, Any]:
    return {"id": f"e{i}", "cluster_id": cluster or f"e{i}", "title": f"story {i}"}


def test_matches_become_one_item_per_story_and_subscriber() -> None:
    a, b = sub("a"), sub("b")
    digests, table = book([a, b]), {}
    writes = add_matches(digests, [(a, doc(1)), (b, doc(1)), (a, doc(2, "e1"))], T0)
    apply(table, writes)
    assert len(digests.grouper) == 2  # e2 is a copy of the story a already got
    assert sorted(k.split(b"\x1f")[0] for k in table) == [b"digest", b"digest", b"sent", b"sent"]


def test_a_silenced_subscriber_gets_no_events() -> None:
    quiet = sub("quiet", silence_until=(T0 + timedelta(hours=1)).isoformat())
    digests = book([quiet])
    assert add_matches(digests, [(quiet, doc(1))], T0) == []
    assert len(digests.grouper) == 0


def test_replayed_matches_add_nothing_even_after_a_restart() -> None:
    a = sub("a")
    digests, table = book([a]), {}
    apply(table, add_matches(digests, [(a, doc(1)), (a, doc(2))], T0))
    assert add_matches(digests, [(a, doc(1)), (a, doc(2))], T0 + S) == []
    restored = book([a])
    restored.restore(table.items(), _decode)
    assert add_matches(restored, [(a, doc(1)), (a, doc(2, "e2"))], T0 + S) == []
    assert len(restored.grouper) == 2


def test_story_memory_is_bounded_and_its_trimmed_rows_deleted() -> None:
    a = sub("a")
    digests = DigestBook(DigestGrouper(), {a.id: a}, max_sent=2)
    writes = add_matches(digests, [(a, doc(i)) for i in range(3)], T0)
    deleted = [k for k, v in writes if v is None]
    assert len(deleted) == 1 and deleted[0].endswith(b"e0") and len(digests.sent) == 2


def test_events_without_an_id_are_refused() -> None:
    batch = [json.dumps(doc(1)).encode(), b"[1]", b'{"id": ""}', b"nope"]
    parsed = parse_events(batch)
    assert [d["id"] for d in parsed.docs] == ["e1"]
    assert [i for i, _ in parsed.rejected] == [1, 2, 3]
    assert "event without id" in parsed.rejected[0][1]


# ------------------------------------------------------------------ subscriptions


def test_subscription_sets_change_only_on_a_reload() -> None:
    events_only = sub("q", query="IMF")
    alerts_only = sub("r", filters={"rule_types": ["drawdown"]})
    both = sub("h")
    sets = SubscriptionSets()
    everything = sets.all
    first = {s.id: s for s in (events_only, alerts_only, both)}
    assert sets.update(first) and sets.take_freeze() and not sets.take_freeze()
    events = sets.events
    assert set(events) == {events_only.id, both.id}
    assert [s.id for s in sets.alerts] == [alerts_only.id, both.id]
    assert not sets.update(first) and sets.events is events and not sets.freeze_due
    assert sets.update({both.id: both}) and sets.freeze_due
    assert sets.all is everything and list(everything) == [both.id]  # the same dict, refilled
    assert sets.events is not events
