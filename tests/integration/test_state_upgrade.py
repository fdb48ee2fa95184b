"""A current worker restores state an older release left in Faust's changelog topics.

The changelogs are written here, before the worker starts, in the shapes the code wrote before
state versions existed (git 9c0c343: ``streams/position_table.py`` saved a bare next offset per
partition; ``streams/treasury_agent.py`` saved ``{"ref", "holdings", "engine", "input"}``;
``story-entries`` rows were ``StoryClusterer.entry_dict``), serialised as Faust writes them:
keys raw (bytes-keyed tables) or JSON (str keys), values through Faust's ``json`` codec,
topic ``<app id>-<table>-changelog``. Those shapes and formats were read from a changelog a real
worker wrote. A record from a newer release must stop the worker, naming the table.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from faust.serializers import codecs
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from cpwatch import topics as t
from cpwatch.records import NewsArticle, PriceTick
from cpwatch.settings import Settings
from runtime.position_table import row_key
from streams.alerts import iso_utc
from streams.dedup import StoryClusterer
from streams.rules import load_rules
from streams.treasury_processor import TreasuryProcessor
from tests.backtest_case import assert_same_alerts, backtest_case
from tests.conftest import wait_for
from tests.integration.test_news_stream import COPY_TEXT, SEED_TEXT
from tests.integration.test_treasury_stream import HOLDINGS, RULES, _prices
from tests.worker import stall_report, start_worker, stop_worker

pytestmark = pytest.mark.integration

SYMBOL = "BTC-USD"
SPLIT = 60  # the old worker valued the first SPLIT daily prices before the upgrade
SKIPPED = 3  # news partition 0: the old worker had done offsets 0..2, its position is 3


def changelog(s: Settings, table: str) -> str:
    """Faust's changelog topic of ``table`` (runtime/faust_app.py: app id = prefix + id)."""
    return f"{s.topic_prefix}{s.faust_app_id}-{table}-changelog"


def write_changelog(
    s: Settings, table: str, partitions: int, rows: list[tuple[bytes, Any]]
) -> None:
    """Create the changelog topic as Faust declares it (compacted) and write ``rows``
    (key bytes, value) with Faust's JSON codec, partitioned as Faust's producer does."""
    admin = KafkaAdminClient(**s.kafka_client_kwargs())
    try:
        topic = NewTopic(
            changelog(s, table),
            partitions,
            s.topic_replication,
            topic_configs={"cleanup.policy": "compact"},
        )
        admin.create_topics([topic])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
    producer = KafkaProducer(**s.kafka_client_kwargs())
    for key, value in rows:
        producer.send(changelog(s, table), key=key, value=codecs.dumps("json", value))
    producer.flush()
    producer.close()


def read_all(s: Settings, topic: str) -> list[Any]:
    """Every record of ``topic`` up to its current end offsets."""
    c = KafkaConsumer(**s.kafka_client_kwargs(), enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic) or ()]
        c.assign(tps)
        c.seek_to_beginning()
        end = c.end_offsets(tps)
        out: list[Any] = []
        while any(c.position(tp) < end[tp] for tp in tps):
            for msgs in c.poll(timeout_ms=1000).values():
                out.extend(msgs)
        return out
    finally:
        c.close()


def article(i: int, title: str, text: str) -> NewsArticle:
    return NewsArticle(
        id=f"n{i}", source=f"wire-{i}", title=title, text=text, published="2025-05-28T12:00:00Z"
    )


def old_treasury_record(s: Settings, ticks: list[bytes], holdings: list[Any]) -> dict[str, Any]:
    """The record the pre-version worker saved after ``ticks`` (9c0c343 treasury_agent.py:
    the same four fields, no ``"v"``), made by today's processor over the same input."""
    processor = TreasuryProcessor(
        load_rules(s.rules_path), timedelta(seconds=s.price_staleness_s), s.price_divergence_pct
    )
    st = processor.new_state(SYMBOL)
    out = processor.process(st, SYMBOL, ticks, holdings)
    assert out.alerts, "the part before the upgrade should already cross rules"
    return {
        "ref": st.ref.to_dict(),
        "holdings": st.book.timeline.to_dict(),
        "engine": st.book.engine.to_dict(),
        # The by-symbol topic of this namespace is new: the state expects its first offset.
        "input": [partition_of(s, SYMBOL.encode()), 0],
    }


def partition_of(s: Settings, key: bytes) -> int:
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % s.topic_partitions


def test_old_state_is_restored_and_migrated(kafka_settings: Settings, tmp_path: Path) -> None:
    case = backtest_case(kafka_settings, tmp_path, RULES, HOLDINGS, _prices)
    s, prices, holdings, every = case.settings, case.prices, case.holdings, case.alerts
    ticks = [
        PriceTick(venue="replay", symbol=SYMBOL, price=row.close, ts=row.ts, seq=i)
        for i, row in enumerate(prices)
    ]
    # What the stream owes after the upgrade: the backtest's alerts from the first new price.
    cut = iso_utc(ticks[SPLIT].ts)
    expected = [a for a in every if a["ts"] >= cut]
    assert 3 <= len(expected) < len(every)

    # Old state. Story: one remembered article of the seed story (9c0c343 wrote entry_dict).
    c = StoryClusterer()
    c.assign(
        "old-seed",
        "Pakistan and El Salvador sign bitcoin letter of intent",
        SEED_TEXT,
        datetime.fromisoformat("2025-05-28T10:00:00+00:00"),
    )
    write_changelog(s, "story-entries", 1, [(b'"old-seed"', c.entry_dict("old-seed"))])
    write_changelog(s, "news-positions", s.topic_partitions, [(b"0", SKIPPED)])
    record = old_treasury_record(s, [k.to_bytes() for k in ticks[:SPLIT]], holdings)
    write_changelog(s, "treasury-state", s.topic_partitions, [(SYMBOL.encode(), record)])

    # Input: news on partition 0 (offsets before SKIPPED were done by the old worker), the
    # holdings, and the whole price series (the part before the upgrade replayed).
    producer = KafkaProducer(**s.kafka_client_kwargs())
    plain = "A bitcoin conference opened in Lisbon with talks on wallets and mining hardware."
    news = [article(i, f"Conference day {i}", plain) for i in range(SKIPPED)]
    news.append(article(SKIPPED, "Pakistan, El Salvador sign bitcoin letter of intent", COPY_TEXT))
    news.append(article(SKIPPED + 1, "Conference closes", plain))
    for a in news:
        producer.send(s.topic(t.NEWS), key=a.id.encode(), value=a.to_bytes(), partition=0)
    for h in holdings:
        producer.send(s.topic(t.HOLDINGS), key=h.holder.encode(), value=h.to_bytes())
    producer.flush()
    for tick in ticks:
        producer.send(s.topic(t.PRICE_TICKS), key=tick.key.encode(), value=tick.to_bytes())
    producer.flush()
    producer.close()

    worker = start_worker(s, tmp_path / "worker.log")
    try:
        alerts: list[dict[str, Any]] = []

        def treasury_caught_up() -> bool:
            alerts[:] = [json.loads(m.value) for m in read_all(s, s.topic(t.ALERTS))]
            return worker.poll() is not None or len(alerts) >= len(expected)

        def news_position_saved() -> bool:
            # Written in today's shape once the outputs of every news message were acknowledged,
            # under today's key (runtime/position_table.py); the old row is deleted.
            found = read_all(s, changelog(s, "news-positions"))
            key = row_key(0, s.topic_partitions)
            rows = [codecs.loads("json", m.value) for m in found if m.key == key]
            old = [m.value for m in found if m.key == b"0"]
            done = bool(rows) and rows[-1] == {"v": 1, "offset": len(news)}
            return worker.poll() is not None or (done and old[-1:] == [None])

        def treasury_saved_last_price() -> bool:
            # The symbol's record rewritten in today's shape, its holders handed to the holder
            # slots, and every slot's record after the series' last price: no alert can still
            # be on its way once they are there.
            rows = [
                codecs.loads("json", m.value)
                for m in read_all(s, changelog(s, "treasury-state"))
                if m.key == SYMBOL.encode()
            ]
            last = rows[-1] if rows else {}
            moved = last.get("v") == 2 and not last["holdings"].get("holders")
            slots: dict[bytes, Any] = {}
            for m in read_all(s, changelog(s, "treasury-holders")):
                slots[m.key] = codecs.loads("json", m.value)
            priced = len(slots) == s.topic_partitions and all(
                r["engine"]["last_ts"].get(SYMBOL) == end_ts for r in slots.values()
            )
            held = {h for r in slots.values() for h in r["holdings"]["holders"]}
            done = moved and priced and held == {h.holder for h in holdings}
            return worker.poll() is not None or done

        def news_state() -> str:
            # Where the news path stopped: its position rows, what it sent, the worker's state.
            found = read_all(s, changelog(s, "news-positions"))
            rows = [(m.partition, m.key, m.value) for m in found]
            articles = sorted(m.key for m in read_all(s, s.topic(t.ARTICLES)))
            report = stall_report(worker, tmp_path / "worker.log")
            return f"news-positions rows: {rows}\narticles sent: {articles}\n{report}"

        end_ts = ticks[-1].ts.timestamp()
        wait_for(treasury_caught_up, timeout=120)
        wait_for(treasury_saved_last_price, timeout=60)
        wait_for(news_position_saved, timeout=60, context=news_state)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]

        # (b) The migrated treasury state carried on exactly where the backtest is.
        alerts = [json.loads(m.value) for m in read_all(s, s.topic(t.ALERTS))]
        assert_same_alerts(alerts, expected)

        # (a) The old position was honoured: news before it was not classified again.
        done = {m.key.decode() for m in read_all(s, s.topic(t.ARTICLES))}
        assert done == {a.id for a in news[SKIPPED:]}
        # The old story entry was restored: the copy joined its cluster.
        events = [json.loads(m.value) for m in read_all(s, s.topic(t.POLICY_EVENTS))]
        assert [(e["id"], e["cluster_id"]) for e in events] == [(f"n{SKIPPED}", "old-seed")]
        entries = {
            m.key: codecs.loads("json", m.value) for m in read_all(s, changelog(s, "story-entries"))
        }
        assert entries[f'"n{SKIPPED}"'.encode()]["v"] == 1  # new rows are written versioned
    finally:
        stop_worker(worker)


def test_a_newer_record_stops_the_worker(kafka_settings: Settings, tmp_path: Path) -> None:
    s = kafka_settings
    write_changelog(s, "news-positions", s.topic_partitions, [(b"0", {"v": 2, "offset": 1})])
    producer = KafkaProducer(**s.kafka_client_kwargs())
    a = article(0, "Conference day", "A bitcoin conference opened in Lisbon.")
    producer.send(s.topic(t.NEWS), key=a.id.encode(), value=a.to_bytes(), partition=0)
    producer.flush()
    producer.close()
    worker = start_worker(s, tmp_path / "worker.log")
    try:
        wait_for(lambda: worker.poll() is not None, timeout=90)
        log = (tmp_path / "worker.log").read_text()
        assert worker.returncode == 1  # mode exits EX_FAILURE on a crash
        assert "table 'news-positions'" in log and "version 2" in log, log[-3000:]
        assert "upgrade the worker" in log
        assert not read_all(s, s.topic(t.ARTICLES))  # nothing was processed on a misread
    finally:
        stop_worker(worker)
