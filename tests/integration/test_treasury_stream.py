"""Prices and holdings through Kafka and the Faust agents give exactly the backtest's alerts."""

from __future__ import annotations

import json
import math
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, KafkaProducer

from cpwatch import topics as t
from cpwatch.records import PriceTick
from cpwatch.settings import Settings
from tests.backtest_case import assert_same_alerts, backtest_case
from tests.conftest import WORKER, wait_for

pytestmark = pytest.mark.integration

RULES = """
rules:
  - {id: sv-level, holder: SV, type: level, threshold_usd: 600000000, hysteresis: 0.01}
  - {id: all-drawdown, holder: "*", type: drawdown, pct: 15}
  - {id: co-cost, holder: ACME, type: below_cost, hysteresis: 0.0}
  - {id: co-move, holder: ACME, type: pct_move, window: 3d, pct: 8}
"""

HOLDINGS = """holder,kind,country,btc,as_of,avg_cost_usd,source_url,note
SV,state,SV,6000,2024-01-01,,https://example.org/sv,test
SV,state,SV,6300,2024-02-15,,https://example.org/sv,test
ACME,company,US,10000,2024-01-10,95000,https://example.org/acme,test
"""


def _prices(path: Path) -> None:
    """A deterministic wavy series: many level, cost, drawdown and move crossings."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    lines = ["date,open,high,low,close"]
    for i in range(120):
        close = 100_000 + 12_000 * math.sin(i / 6) + 4_000 * math.sin(i / 1.7)
        d = (start + timedelta(days=i)).date().isoformat()
        lines.append(f"{d},{close:.2f},{close:.2f},{close:.2f},{close:.2f}")
    path.write_text("\n".join(lines) + "\n")


def test_stream_alerts_equal_backtest(
    kafka_settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    case = backtest_case(kafka_settings, tmp_path, RULES, HOLDINGS, _prices)
    s, prices, holdings, expected = case.settings, case.prices, case.holdings, case.alerts
    assert len(expected) >= 8, "fixture should cross several rules"

    from tests.conftest import settings_env

    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        WORKER,
        env=settings_env(s),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        producer = KafkaProducer(**s.kafka_client_kwargs())
        for h in holdings:
            producer.send(s.topic(t.HOLDINGS), key=h.holder.encode(), value=h.to_bytes())
        producer.flush()
        for i, row in enumerate(prices):
            tick = PriceTick(venue="replay", symbol="BTC-USD", price=row.close, ts=row.ts, seq=i)
            producer.send(s.topic(t.PRICE_TICKS), key=tick.key.encode(), value=tick.to_bytes())
        producer.flush()
        producer.close()

        consumer = KafkaConsumer(
            s.topic(t.ALERTS),
            auto_offset_reset="earliest",
            consumer_timeout_ms=1000,
            **s.kafka_client_kwargs(),
        )
        got: list[dict[str, object]] = []

        def all_alerts() -> bool:
            got.extend(json.loads(m.value) for m in consumer)
            return len(got) >= len(expected)

        wait_for(all_alerts, timeout=120)
        got.extend(json.loads(m.value) for m in consumer)  # anything extra would show here
        consumer.close()
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        assert_same_alerts(got, expected)

        es = Elasticsearch(**s.es_client_kwargs())

        counts: list[int] = []

        def indexed() -> bool:
            es.indices.refresh(index=s.index("alerts"))
            counts.append(es.count(index=s.index("alerts"))["count"])
            return counts[-1] >= len(expected)

        wait_for(indexed, timeout=60)
        assert counts[-1] == len(expected)
        ids = {h["_id"] for h in es.search(index=s.index("alerts"), size=1000)["hits"]["hits"]}
        assert ids == {a["fingerprint"] for a in got}
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
