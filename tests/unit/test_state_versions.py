"""cpwatch.state_versions: today's stored shapes (v0) upgrade to v1 and still decode.

The v0 fixtures are made by the code that writes them today (the same calls and the same dict
literals as the agents), not written by hand, so a change to a writer shows up here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cpwatch import state_versions as sv
from cpwatch.records import HoldingUpdate, PriceTick
from notify.delivery import item_dict
from notify.lifecycle import DigestGrouper, LifecycleTracker, Notification
from streams.alerts import Alert
from streams.dedup import StoryClusterer
from streams.holdings import HoldingsTimeline
from streams.refprice import ReferencePrice
from streams.rules import RuleEngine, parse_rules
from streams.treasury import TreasuryBook

T0 = datetime(2025, 3, 1, tzinfo=UTC)
RULES = parse_rules(
    """
rules:
  - {id: level-1b, holder: "*", type: level, threshold_usd: 1000000000}
  - {id: dd-20, holder: "*", type: drawdown, pct: 20}
""",
    source="test",
)


def _json(x: Any) -> Any:
    """What a Faust table gives back: the value through its JSON codec."""
    return json.loads(json.dumps(x))


def treasury_v0() -> dict[str, Any]:
    """A BTC-USD record as streams/treasury_agent.py (HEAD) writes it after two ticks."""
    ref = ReferencePrice(timedelta(minutes=2), 2.0)
    holding = HoldingUpdate.parse(
        {"holder": "acme", "name": "Acme", "kind": "company", "btc": 20000, "as_of": T0.isoformat()}
    )
    book = TreasuryBook(RuleEngine(RULES), HoldingsTimeline([holding]), "BTC-USD")
    for i, price in enumerate((60_000.0, 40_000.0)):
        ts = T0 + timedelta(hours=i)
        tick = PriceTick(venue="coinbase", symbol="BTC-USD", price=price, ts=ts)
        p, _ = ref.update(tick)
        assert p is not None
        book.on_price(ref.as_of("BTC-USD"), p)  # type: ignore[arg-type]
    return _json(
        {
            "ref": ref.to_dict(),
            "holdings": book.timeline.to_dict(),
            "engine": book.engine.to_dict(),
            "input": [0, 42],
        }
    )


def alert(direction: str = "down") -> Alert:
    return Alert("level-1b", "acme", T0, direction, 8e8, 1e9, 40_000.0, 20_000.0)  # type: ignore[arg-type]


def lifecycle_v0() -> dict[str, Any]:
    tracker = LifecycleTracker([], {"level-1b": "level"})
    tracker.observe(alert(), T0)
    return _json(tracker.to_dict())


def digest_group_v0() -> tuple[str, dict[str, Any]]:
    grouper: DigestGrouper[Any] = DigestGrouper()
    note = Notification("sub-1", "firing", alert(), alert().fingerprint, T0, "level")
    grouper.add("sub-1", note, T0, group="rule=level-1b", key=note.delivery_id)
    (gk,) = grouper.take_dirty()
    snap = grouper.snapshot(gk, item_dict)
    assert snap is not None
    return gk, _json(snap)


def story_entry_v0() -> dict[str, Any]:
    c = StoryClusterer()
    c.assign("a1", "El Salvador buys bitcoin", "The state added 21 BTC to its reserve.", T0)
    return _json(c.entry_dict("a1"))


def outbox_v0() -> dict[str, Any]:
    from notify.match_agent import delivery_message

    note = Notification("sub-1", "firing", alert(), alert().fingerprint, T0, "level")
    return _json(delivery_message("sub-1", [note]))


V0 = {
    "treasury-state": treasury_v0,
    "positions": lambda: 1234,  # PositionTable.save: table[str(partition)] = next offset
    "story-entry": story_entry_v0,
    "lifecycle": lifecycle_v0,
    "digest-group": lambda: digest_group_v0()[1],
    "digest-sent": lambda: T0.timestamp(),  # DigestStore.persist: table[story] = at (epoch s)
    "digest-outbox": outbox_v0,
}


def test_every_kind_has_a_fixture() -> None:
    assert set(sv.kinds()) == set(V0)


@pytest.mark.parametrize("kind", sorted(V0))
def test_v0_upgrades_to_v1_and_is_stable(kind: str) -> None:
    old = V0[kind]()
    assert sv.version_of(old) == 0
    new = sv.migrate(kind, old)
    assert new["v"] == 1 == sv.current(kind)
    assert sv.migrate(kind, new) == new  # already current: unchanged
    assert sv.migrate(kind, _json(new)) == new  # and through the table's codec
    if isinstance(old, dict):
        assert {k: v for k, v in new.items() if k != "v"} == old  # nothing lost or renamed
        assert "v" not in old  # the input is not modified


def test_bare_numbers_become_objects() -> None:
    assert sv.migrate("positions", 1234) == {"v": 1, "offset": 1234}
    assert sv.migrate("digest-sent", 1740787200) == {"v": 1, "at": 1740787200.0}


def test_migrated_records_still_decode() -> None:
    rec = sv.migrate("treasury-state", treasury_v0())
    ref = ReferencePrice(timedelta(minutes=2), 2.0, state=rec["ref"])
    assert ref.price("BTC-USD") == 40_000.0
    engine = RuleEngine.from_dict(RULES, rec["engine"])
    assert engine.to_dict() == rec["engine"]
    assert HoldingsTimeline.from_dict(rec["holdings"]).holders == ["acme"]

    tracker = LifecycleTracker([], state=sv.migrate("lifecycle", lifecycle_v0()))
    assert [a.fingerprint for a in tracker.open_incidents()] == [alert().fingerprint]

    gk, snap = digest_group_v0()
    grouper: DigestGrouper[Any] = DigestGrouper()
    grouper.restore(gk, sv.migrate("digest-group", snap), lambda raw: raw)
    assert len(grouper) == 1

    entry = sv.migrate("story-entry", story_entry_v0())
    c = StoryClusterer.from_dict(
        {"version": 1, "max_entries": 10, "window_s": 86400.0, "threshold": 0.25,
         "entries": [entry]}
    )
    assert c.ids() == {"a1"}


def test_none_stays_none() -> None:
    assert sv.migrate("treasury-state", None) is None


@pytest.mark.parametrize(
    ("kind", "payload", "msg"),
    [
        ("treasury-state", {"v": 2, "input": None}, "version 2; this code reads up to 1"),
        ("treasury-state", {"v": 0}, "bad state version"),
        ("treasury-state", {"v": True}, "bad state version"),
        ("treasury-state", [1, 2], "must be an object"),
        ("treasury-state", {"ref": {}}, "lacks input"),
        ("treasury-state", {"input": 7}, "input must be"),
        ("positions", "12", "must be a number"),
        ("positions", True, "must be a number"),
        ("digest-sent", None, None),
        ("nope", {}, "unknown state kind"),
    ],
)
def test_bad_records_are_refused(kind: str, payload: Any, msg: str | None) -> None:
    if msg is None:
        assert sv.migrate(kind, payload) is None
        return
    with pytest.raises(sv.StateVersionError, match=msg):
        sv.migrate(kind, payload)


def test_lifecycle_table_keys_name_their_kind() -> None:
    assert sv.lifecycle_kind(b"lifecycle") == "lifecycle"
    assert sv.lifecycle_kind("digest\x1fsub-1\x1frule=x") == "digest-group"
    assert sv.lifecycle_kind(b"sent\x1fsub-1\x1fstory") == "digest-sent"
    assert sv.lifecycle_kind(b"outbox\x1fabc") == "digest-outbox"
    with pytest.raises(sv.StateVersionError):
        sv.lifecycle_kind(b"other")


def test_a_step_registers_once() -> None:
    with pytest.raises(ValueError, match="twice"):
        sv.step("positions", 0)(lambda p: p)
