"""Helpers shared by the fault tests: a restartable worker, a paced input, topic and index reads.

Fault tests run on the same per-test namespaces as the integration tier, but they stop and
restart the session's Kafka and Elasticsearch: run them only on a stack of their own, as
``make test`` does (README, Fault tolerance).
"""

from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata

from cpwatch import topics as t
from cpwatch.records import HoldingUpdate, NewsArticle, PriceTick
from cpwatch.settings import Settings
from streams.alerts import Alert
from streams.backtest import PriceRow, run_backtest
from streams.rules import RuleEngine, load_rules
from tests.conftest import ROOT, WORKER, settings_env
from tests.worker import stall_report

RULES = """
rules:
  - {id: sv-level, holder: SV, type: level, threshold_usd: 600000000, hysteresis: 0.01}
  - {id: all-drawdown, holder: "*", type: drawdown, pct: 6}
  - {id: co-cost, holder: ACME, type: below_cost, hysteresis: 0.002}
  - {id: co-move, holder: ACME, type: pct_move, window: 6h, pct: 3}
"""
START = datetime(2024, 1, 1, tzinfo=UTC)
HOLDINGS = [
    HoldingUpdate(holder="SV", kind="state", country="SV", btc=6000, as_of=START),
    HoldingUpdate(
        holder="SV", kind="state", country="SV", btc=6300, as_of=START + timedelta(days=20)
    ),
    HoldingUpdate(
        holder="ACME", kind="company", country="US", btc=10_000, as_of=START, avg_cost_usd=100_000
    ),
]


def with_rules(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return settings.model_copy(update={"rules_file": path})


def ticks(n: int, seed: int, *, venue: str = "replay", step_s: int = 60) -> list[PriceTick]:
    """A seeded random walk around 100k USD with slow waves: many crossings of every rule."""
    rng = random.Random(seed)
    out, drift = [], 0.0
    for i in range(n):
        drift = drift * 0.999 + rng.gauss(0, 150)
        price = 100_000 + 9_000 * math.sin(i / 900) + drift
        ts = START + timedelta(seconds=i * step_s)
        out.append(PriceTick(venue=venue, symbol="BTC-USD", price=round(price, 2), ts=ts, seq=i))
    return out


def expected_alerts(settings: Settings, tick_list: list[PriceTick]) -> list[Alert]:
    """What ``cpwatch backtest`` gives for these ticks, holdings and rules."""
    rows = [PriceRow(line=i, ts=k.ts, close=k.price) for i, k in enumerate(tick_list)]
    assert settings.rules_file is not None
    engine = RuleEngine(load_rules(settings.rules_file))
    return list(run_backtest(rows, HOLDINGS, engine))


def articles(n: int, seed: int) -> list[NewsArticle]:
    """Distinct articles built from the bundled sample news, each under its own id."""
    sample = [
        json.loads(line)
        for line in (ROOT / "cpwatch/data/sample_news.jsonl").read_text().splitlines()
        if line.strip()
    ]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s = sample[i % len(sample)]
        out.append(
            NewsArticle(
                id=f"fault-{seed}-{i}",
                source=s.get("source") or "wire",
                title=f"{s['title']} ({i})",
                text=s.get("text", "") + f" Ref {rng.randrange(10**9)}.",
                published=START + timedelta(minutes=i),
            )
        )
    return out


class Worker:
    """One `cpwatch worker` child at a time; kill -9 and restart it at will."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings, self.log_path = settings, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        log.write(f"\n===== start {self.starts} at {time.time():.1f}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            WORKER,
            env=settings_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        log.close()
        self.starts += 1

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def report(self) -> str:
        """A failing wait's context: the worker's tasks, threads and log (tests/worker.py)."""
        if self.proc is None:
            return "worker never started"
        return stall_report(self.proc, self.log_path)


@pytest.fixture
def restartable_worker(kafka_settings: Settings, tmp_path: Path) -> Iterator[Worker]:
    w = Worker(kafka_settings, tmp_path / "worker.log")  # settings replaced by the test
    yield w
    w.stop()


def read_topic(settings: Settings, name: str, idle_ms: int = 3000) -> list[bytes | None]:
    """Every value on a cpwatch topic, from the start, until it has been idle for idle_ms."""
    consumer = KafkaConsumer(
        settings.topic(name),
        auto_offset_reset="earliest",
        consumer_timeout_ms=idle_ms,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **settings.kafka_client_kwargs(),
    )
    values = [m.value for m in consumer]
    consumer.close()
    return values


def worker_groups(settings: Settings) -> tuple[str, str]:
    """The worker's Faust consumer group and route-ticks' own (streams/tick_router.py)."""
    faust_group = f"{settings.topic_prefix}{settings.faust_app_id}"
    return faust_group, f"{faust_group}-route-ticks"


def end_offsets(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    """The end offset of every partition of ``topic`` (a full name)."""
    reader = KafkaConsumer(group_id=None, **settings.kafka_client_kwargs())
    try:
        tps = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic)]
        ends: dict[TopicPartition, int] = reader.end_offsets(tps)
        return ends
    finally:
        reader.close()


def commit_to_end(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    """Commit the worker's Faust group at the end of every partition of ``topic`` (a full
    name), as if processed: what Faust's gap handling can leave. The worker must be stopped."""
    ends = end_offsets(settings, topic)
    admin = KafkaAdminClient(**settings.kafka_client_kwargs())
    try:
        faust_group, _ = worker_groups(settings)
        offsets = {tp: OffsetAndMetadata(end) for tp, end in ends.items()}
        result = admin.alter_group_offsets(faust_group, offsets)
    finally:
        admin.close()
    assert all(err.errno == 0 for err in result.values()), result
    return ends


def news_offsets(settings: Settings) -> str:
    """The news offsets the worker's group committed against the partition ends, how many
    articles reached the articles topic, and the positions classify-news saved: where each
    partition stands between Kafka, the agent and its outputs when articles are missing."""
    group, _ = worker_groups(settings)
    reader = KafkaConsumer(
        group_id=group, enable_auto_commit=False, **settings.kafka_client_kwargs()
    )
    try:
        news = settings.topic(t.NEWS)
        tps = [TopicPartition(news, p) for p in reader.partitions_for_topic(news) or ()]
        ends = reader.end_offsets(tps)
        offsets = {tp.partition: (reader.committed(tp), ends[tp]) for tp in tps}
        out = settings.topic(t.ARTICLES)
        outs = [TopicPartition(out, p) for p in reader.partitions_for_topic(out) or ()]
        sent = sum(reader.end_offsets(outs).values())
        changelog = f"{group}-news-positions-changelog"
        cl = [TopicPartition(changelog, p) for p in reader.partitions_for_topic(changelog) or ()]
        rows: dict[Any, Any] = {}
        reader.assign(cl)
        reader.seek_to_beginning()
        cl_end = reader.end_offsets(cl)
        while any(reader.position(tp) < cl_end[tp] for tp in cl):
            for msgs in reader.poll(timeout_ms=1000).values():
                for m in msgs:
                    rows[m.key] = json.loads(m.value) if m.value else None
    finally:
        reader.close()
    return (
        f"news (committed, end) by partition: {offsets}; on the articles topic: {sent}\n"
        f"news-positions rows: {rows}"
    )


def committed(settings: Settings, name: str, *, internal: bool = False) -> int:
    """Sum of the worker's committed offsets on one input (or internal) topic. Price ticks are
    read by route-ticks' own consumer group (streams/tick_router.py), the rest by Faust's."""
    admin = KafkaAdminClient(**settings.kafka_client_kwargs())
    try:
        faust_group, ticks_group = worker_groups(settings)
        group = ticks_group if name == t.PRICE_TICKS and not internal else faust_group
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    prefix = f"{settings.topic_prefix}{settings.faust_app_id}"
    topic = f"{prefix}-{name}" if internal else settings.topic(name)
    return sum(o.offset for tp, o in offsets.items() if tp.topic == topic and o.offset > 0)


def es_ids(settings: Settings, index: str) -> list[str]:
    """Every document id of a cpwatch index (alias), scrolling with search_after."""
    es = Elasticsearch(**settings.es_client_kwargs())
    try:
        es.indices.refresh(index=settings.index(index))
        ids: list[str] = []
        after: list[Any] | None = None
        while True:
            kw: dict[str, Any] = {"search_after": after} if after else {}
            r = es.search(
                index=settings.index(index),
                size=5000,
                sort=[{"_doc": "asc"}],
                source=False,
                **kw,
            )
            hits = r["hits"]["hits"]
            if not hits:
                return ids
            ids.extend(h["_id"] for h in hits)
            after = hits[-1]["sort"]
    finally:
        es.close()


def es_count(settings: Settings, index: str) -> int:
    es = Elasticsearch(**settings.es_client_kwargs())
    try:
        if not es.indices.exists(index=settings.index(index)):
            return 0
        es.indices.refresh(index=settings.index(index))
        return int(es.count(index=settings.index(index))["count"])
    finally:
        es.close()


def alert_fingerprints(values: list[bytes | None]) -> tuple[set[str], int]:
    """Distinct fingerprints on the alerts topic and how many messages repeated one."""
    fps = [json.loads(v)["fingerprint"] for v in values if v is not None]
    return set(fps), len(fps) - len(set(fps))


def send_holdings(settings: Settings) -> None:
    from producers.kafka import Producer

    with Producer(settings) as p:
        for h in HOLDINGS:
            p.send(t.HOLDINGS, h.key, h)
