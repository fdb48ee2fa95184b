"""cpwatch.state_versions: today's stored shapes (v0) upgrade to v1 and still decode.

The v0 fixtures are made by the code that writes them today (the same calls and the same dict
literals as the agents), not written by hand, so a change to a writer shows up here.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from cpwatch import state_versions as sv
from cpwatch.records import HoldingUpdate, PriceTick
from cpwatch.settings import Settings
from notify.delivery import item_dict
from notify.lifecycle import DigestGrouper, LifecycleTracker, Notification
from runtime import table_state
from runtime.position_table import PositionTable, row_key
from runtime.table_state import read_record, stop_worker, versioned
from streams.alerts import Alert
from streams.dedup import StoryClusterer
from streams.holdings import HoldingsTimeline
from streams.refprice import ReferencePrice
from streams.rules import RuleEngine, parse_rules
from streams.treasury import TreasuryBook
from streams.treasury_processor import STATE_VERSION, TreasuryProcessor

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
    """A BTC-USD record as streams/treasury_agent.py wrote it before versions (git 9c0c343: the
    same four fields, no ``"v"``) after two ticks."""
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


def test_treasury_state_is_versioned_by_its_processor_alone() -> None:
    # Not a kind here (see the module docstring): from_record reads v0 and refuses newer.
    assert "treasury-state" not in sv.kinds()
    processor = TreasuryProcessor(RULES, timedelta(minutes=2), 2.0)
    old = treasury_v0()
    st = processor.from_record("BTC-USD", old)
    assert st.ref.price("BTC-USD") == 40_000.0
    assert st.book.engine.to_dict() == old["engine"]
    assert st.book.timeline.holders == ["acme"]
    assert (st.partition, st.next_offset) == (0, 42)
    assert st.to_record() == {**old, "v": STATE_VERSION, "published": 0}  # today's shape
    with pytest.raises(sv.StateVersionError, match="upgrade the worker"):
        processor.from_record("BTC-USD", {**old, "v": STATE_VERSION + 1})


def test_an_old_asset_record_hands_its_holders_to_the_holder_stage() -> None:
    # Version 2 keeps holdings and rule state in the holder stage: the stream's symbol stage
    # reads an older record's part for it once, as the handover, and keeps the rest.
    processor = TreasuryProcessor(RULES, timedelta(minutes=2), 2.0, holders_apart=True)
    old = treasury_v0()
    st = processor.from_record("BTC-USD", old)
    assert st.handover is not None
    assert st.handover["engine"] == old["engine"]
    assert st.handover["holdings"] == old["holdings"]
    assert st.handover["ref"][0] == 40_000.0
    assert st.ref.price("BTC-USD") == 40_000.0 and st.book.timeline.holders == []
    again = processor.from_record("BTC-USD", st.to_record())  # once saved, no second handover
    assert again.handover is None and again.ref.price("BTC-USD") == 40_000.0


def test_migrated_records_still_decode() -> None:
    tracker = LifecycleTracker([], state=sv.migrate("lifecycle", lifecycle_v0()))
    assert [a.fingerprint for a in tracker.open_incidents()] == [alert().fingerprint]

    gk, snap = digest_group_v0()
    grouper: DigestGrouper[Any] = DigestGrouper()
    grouper.restore(gk, sv.migrate("digest-group", snap), lambda raw: raw)
    assert len(grouper) == 1

    entry = sv.migrate("story-entry", story_entry_v0())
    c = StoryClusterer.from_dict(
        {
            "version": 1,
            "max_entries": 10,
            "window_s": 86400.0,
            "threshold": 0.25,
            "entries": [entry],
        }
    )
    assert c.ids() == {"a1"}


def test_none_stays_none() -> None:
    assert sv.migrate("story-entry", None) is None


@pytest.mark.parametrize(
    ("kind", "payload", "msg"),
    [
        ("story-entry", {"v": 2, "id": "a"}, "version 2; this code reads up to 1"),
        ("positions", {"v": 2, "offset": 3}, "version 2; this code reads up to 1"),
        ("story-entry", {"v": 0}, "bad state version"),
        ("story-entry", {"v": True}, "bad state version"),
        ("story-entry", [1, 2], "must be an object"),
        ("story-entry", {"id": "a", "cluster": "a", "sig": []}, "lacks ts"),
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


# ------------------------------------------------- the agents' edge (runtime/table_state.py)


class FakeTable(dict[Any, Any]):
    """A table: its rows, and the name of its changelog topic."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.changelog_topic = type("Topic", (), {"get_topic_name": lambda _: f"{name}-log"})()


class FakeCluster:
    def __init__(self) -> None:
        self.partitions: dict[str, set[int]] = {}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions.get(topic)


class FakeClient:
    """aiokafka's metadata: a refresh asks for the tracked topics only and replaces the cache."""

    def __init__(self) -> None:
        self.cluster, self.tracked = FakeCluster(), set[str]()

    def add_topic(self, topic: str) -> None:
        self.tracked.add(topic)

    def refresh(self) -> None:
        self.cluster.partitions = {t: {0} for t in self.tracked}


class FakeProducer:
    """The aiokafka producer's metadata wait, recorded."""

    def __init__(self) -> None:
        self.looked_up: list[str] = []
        self.client = FakeClient()

    def _ensure_producer(self) -> FakeProducer:
        return self

    async def partitions_for(self, topic: str) -> set[int]:
        self.looked_up.append(topic)
        self.client.cluster.partitions[topic] = {0}
        return {0}


class FakeApp:
    """What PositionTable and stop_worker use of a Faust app: tables, the producer, crash(),
    its id (the consumer group)."""

    def __init__(self) -> None:
        self.conf = SimpleNamespace(id="cpwatch-test")
        self.tables: dict[str, FakeTable] = {}
        self.producer = FakeProducer()
        self.crashed: BaseException | None = None

    def Table(self, name: str, **_: Any) -> FakeTable:  # noqa: N802 - Faust's name
        return self.tables.setdefault(name, FakeTable(name))

    async def crash(self, reason: BaseException) -> None:
        self.crashed = reason


class Msg:
    def __init__(self, partition: int, offset: int) -> None:
        self.partition, self.offset, self.topic = partition, offset, "news"


class Event:
    def __init__(self, partition: int, offset: int) -> None:
        self.message = Msg(partition, offset)


def positions(app: FakeApp) -> PositionTable:
    settings = Settings(processing_guarantee="at_least_once")
    return PositionTable(app, "news-positions", settings, "test")  # type: ignore[arg-type]


def test_position_rows_of_both_versions_are_honoured_and_saved_as_v1() -> None:
    app = FakeApp()
    table = positions(app)
    # v0 (a bare offset, as an old worker left it) on partition 0, v1 on partition 1.
    app.tables["news-positions"].update({b"0": 3, b"1": {"v": 1, "offset": 1}})
    batch = [Event(0, o) for o in range(5)] + [Event(1, 0), Event(1, 1)]
    fresh = asyncio.run(table.admit(batch))
    assert [(e.message.partition, e.message.offset) for e in fresh] == [(0, 3), (0, 4), (1, 1)]
    table.save(batch)
    # Saved as v1 under keys that hash onto their own changelog partition; the old rows go.
    n = table.partitions
    assert app.tables["news-positions"] == {
        row_key(0, n): {"v": 1, "offset": 5},
        row_key(1, n): {"v": 1, "offset": 2},
    }
    # Faust picks a use_partitioner table's changelog partition from the producer's metadata:
    # the changelog was looked up before the first write.
    assert "news-positions-log" in app.producer.looked_up


@pytest.mark.parametrize("partitions", [1, 4, 8, 12])
def test_each_position_row_hashes_onto_its_own_changelog_partition(partitions: int) -> None:
    """Faust restores changelog partition p on the owner of input partition p: the row of p must
    be there. Kafka's default partitioner (aiokafka's) is murmur2(key) mod the partition count."""
    from aiokafka.partitioner import DefaultPartitioner

    parts = list(range(partitions))
    for p in parts:
        assert DefaultPartitioner()(row_key(p, partitions), parts, parts) == p


def test_a_new_position_row_wins_over_an_older_workers_row() -> None:
    app = FakeApp()
    table = positions(app)
    n = table.partitions
    app.tables["news-positions"].update(
        {b"0": 3, row_key(0, n): {"v": 1, "offset": 9}, b"1": {"v": 1, "offset": 4}}
    )
    assert table.load() == {0: 9, 1: 4}


def test_changelog_metadata_is_awaited_once_per_topic() -> None:
    app = FakeApp()

    async def three_writes() -> None:
        for name in ("a", "a", "b"):
            await table_state.changelog_ready(app, app.Table(name))  # type: ignore[arg-type]

    asyncio.run(three_writes())
    assert app.producer.looked_up == ["a-log", "b-log"]


def test_a_changelog_topic_dropped_from_the_producer_metadata_is_looked_up_again() -> None:
    """A topic the cache held from the start (never tracked) drops out at the next refresh for
    tracked topics only, and the next table write raised TypeError in the agent. It is looked
    up again before each batch; nothing is added to the tracked topics while it is cached."""
    app = FakeApp()
    client = app.producer.client
    client.cluster.partitions["a-log"] = {0}  # known from the first, full metadata answer

    async def ready() -> None:
        await table_state.changelog_ready(app, app.Table("a"))  # type: ignore[arg-type]

    asyncio.run(ready())
    assert app.producer.looked_up == [] and client.tracked == set()  # cached: no wait
    client.add_topic("other")
    client.refresh()  # a refresh for the tracked topics only drops it
    assert client.cluster.partitions_for_topic("a-log") is None
    asyncio.run(ready())
    assert app.producer.looked_up == ["a-log"]
    assert client.cluster.partitions_for_topic("a-log") == {0}


@pytest.fixture
def no_watchdog(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    armed: list[bool] = []
    monkeypatch.setattr(table_state, "arm_watchdog", lambda: armed.append(True))
    return armed


def test_a_newer_position_row_crashes_the_app(no_watchdog: list[bool]) -> None:
    app = FakeApp()
    table = positions(app)
    app.tables["news-positions"][b"0"] = {"v": 2, "offset": 3}
    with pytest.raises(sv.StateVersionError, match="upgrade the worker") as err:
        asyncio.run(table.admit([Event(0, 0)]))
    assert app.crashed is err.value and no_watchdog == [True]
    assert "table 'news-positions', key b'0'" in str(err.value)


def test_read_record_names_the_table_and_versioned_writes_today() -> None:
    assert read_record("story-entries", "story-entry", "a1", story_entry_v0())["v"] == 1
    with pytest.raises(sv.StateVersionError, match="table 'story-entries', key 'a1': story-entry"):
        read_record("story-entries", "story-entry", "a1", {"v": 9})
    assert versioned("story-entry", {"id": "a1"}) == {"id": "a1", "v": 1}


def test_stop_worker_crashes_then_raises(no_watchdog: list[bool]) -> None:
    app = FakeApp()
    error = sv.StateVersionError("newer")
    with pytest.raises(sv.StateVersionError):
        asyncio.run(stop_worker(app, error))  # type: ignore[arg-type]
    assert app.crashed is error and no_watchdog == [True]


def test_the_watchdog_exits_1_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_state, "_watchdog", [])
    codes: list[int] = []
    timer = table_state.arm_watchdog(0.01, codes.append)
    assert table_state.arm_watchdog(0.01, codes.append) is timer  # armed once
    timer.join(5)
    assert codes == [1]
