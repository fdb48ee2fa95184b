"""Prometheus metrics end to end: a real worker's /metrics counts what went through it, every
process's /metrics passes ``promtool check metrics``, and a real Prometheus scraping the worker
answers queries for the key series (with the repository's alert rules loaded)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from cpwatch import topics as t
from cpwatch.records import HoldingUpdate, NewsArticle, PriceTick
from cpwatch.settings import Settings
from producers.kafka import Producer
from tests.conftest import ROOT, free_port, wait_for
from tests.worker import stall_report

pytestmark = pytest.mark.integration

RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def kafka_settings(kafka_settings: Settings) -> Settings:
    """This test's namespace, plus a free /metrics port for the worker fixture's process."""
    return kafka_settings.model_copy(update={"metrics_port": free_port()})


def get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
        return resp.read().decode()


def scrape(port: int) -> str:
    try:
        return get(f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return ""


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def promtool_check(text: str, what: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus (make setup does)"
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, f"{what}: {proc.stdout}{proc.stderr}"


def produce(s: Settings, now: datetime) -> None:
    articles = [
        NewsArticle(
            id=f"m-{i}",
            source="wire",
            title=f"Country {i} adopts bitcoin as legal tender",
            text="The parliament passed a law making bitcoin legal tender.",
        )
        for i in range(3)
    ]
    holding = HoldingUpdate(holder="ACME", kind="company", btc=100, as_of=now - timedelta(days=1))
    ticks = [
        PriceTick(venue=v, symbol="BTC-USD", price=p, ts=now)
        for v, p in (("coinbase", 100_000.0), ("kraken", 100_100.0))
    ]
    with Producer(s, client_id="cpwatch-test") as producer:
        for a in articles:
            producer.send(t.NEWS, a.id, a)
        producer.send(t.NEWS, "bad", b"not json")
        producer.send(t.HOLDINGS, holding.key, holding)
        producer.flush()
        for tick in ticks:
            producer.send(t.PRICE_TICKS, tick.key, tick)


@pytest.fixture
def prometheus(tmp_path: Path, kafka_settings: Settings) -> Iterator[int]:
    """A real Prometheus (Debian's binary) scraping the worker every second; yields its port."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: apt-get install prometheus (make setup does)"
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "cpwatch-worker",
                        "static_configs": [
                            {"targets": [f"127.0.0.1:{kafka_settings.metrics_port}"]}
                        ],
                    }
                ],
            }
        )
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(  # noqa: S603
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                return "Ready" in get(f"http://127.0.0.1:{port}/-/ready", 1)
            except OSError:
                return False

        wait_for(ready, timeout=30)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def query(port: int, promql: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    body = json.loads(get(url))
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_worker_metrics_count_the_pipeline(
    kafka_settings: Settings,
    worker: subprocess.Popen[bytes],
    prometheus: int,
    tmp_path: Path,
) -> None:
    s = kafka_settings
    port = s.metrics_port
    wait_for(lambda: "cpwatch_records_in_total" in scrape(port), timeout=60)

    now = datetime.now(UTC)
    produce(s, now)

    def settled() -> Samples | None:
        assert worker.poll() is None, "worker died"
        found = samples(scrape(port))
        want = {
            ("cpwatch_records_in_total", "classify-news", "news"): 4.0,
            ("cpwatch_records_out_total", "classify-news", "articles"): 3.0,
            ("cpwatch_records_dead_lettered_total", "classify-news", "news"): 1.0,
            ("cpwatch_records_out_total", "sink-articles", "articles"): 3.0,
        }
        for (name, stage, topic), expected in want.items():
            if value(found, name, stage=stage, topic=topic) != expected:
                return None
        if value(found, "cpwatch_treasury_value_usd", holder="ACME") is None:
            return None
        lag = [
            v
            for (n, lb), v in found.items()
            if n == "cpwatch_consumer_lag" and ("topic", "news") in lb
        ]
        if len(lag) != s.topic_partitions or sum(lag) != 0:
            return None  # every news partition reported, and nothing left behind
        return found

    def unsettled() -> str:
        # The series settled() reads, as scraped now, then where the worker is.
        lines = [
            line
            for line in scrape(port).splitlines()
            if line.startswith(("cpwatch_records_", "cpwatch_consumer_lag", "cpwatch_treasury"))
        ]
        return "\n".join(lines) + "\n" + stall_report(worker, tmp_path / "worker.log")

    found = wait_for(settled, timeout=120, context=unsettled)
    assert isinstance(found, dict)
    frozen = value(found, "cpwatch_gc_frozen_objects")  # runtime/heap.py, once started
    assert frozen is not None and frozen > 10_000
    price = value(found, "cpwatch_reference_price_usd", symbol="BTC-USD")
    assert price is not None and 100_000.0 <= price <= 100_100.0
    assert value(found, "cpwatch_treasury_value_usd", holder="ACME") == pytest.approx(100 * price)
    for venue in ("coinbase", "kraken"):
        age = value(found, "cpwatch_last_tick_age_seconds", venue=venue)
        assert age is not None and 0 <= age < 120
    assert value(found, "cpwatch_records_in_total", stage="route-ticks", topic="price-ticks") == 2.0
    assert value(found, "cpwatch_processing_seconds_count", stage="classify-news") == 3.0
    bulk = value(found, "cpwatch_es_bulk_seconds_count", index="articles")
    assert bulk is not None and bulk >= 1
    e2e = value(found, "cpwatch_end_to_end_seconds_count", stage="sink-articles")
    assert e2e == 3.0
    fresh = value(found, "cpwatch_end_to_end_seconds_bucket", stage="sink-articles", le="60.0")
    assert fresh == 3.0, "articles fetched just now are indexed within a minute"
    promtool_check(scrape(port), "worker /metrics")

    # The producer side: this process's producer counted what it queued.
    from prometheus_client import REGISTRY

    assert (
        REGISTRY.get_sample_value(
            "cpwatch_records_out_total", {"stage": "producer-test", "topic": "news"}
        )
        == 4.0
    )

    # A real Prometheus scraped the worker and finds the key series.
    def in_prometheus() -> bool:
        def one(promql: str) -> float | None:
            got = query(prometheus, promql)
            return float(got[0]["value"][1]) if len(got) == 1 else None  # type: ignore[index]

        return (
            one('cpwatch_records_in_total{stage="classify-news",topic="news"}') == 4
            and one('cpwatch_records_dead_lettered_total{stage="classify-news"}') == 1
            and one('up{job="cpwatch-worker"}') == 1
            and one('cpwatch_reference_price_usd{symbol="BTC-USD"}') == price
            and one('sum(cpwatch_consumer_lag{topic="news"})') == 0
            and one('count(cpwatch_consumer_lag{topic="news"})') == s.topic_partitions
        )

    wait_for(in_prometheus, timeout=30, interval=0.5)
    rules = json.loads(get(f"http://127.0.0.1:{prometheus}/api/v1/rules"))
    names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert {"CpwatchConsumerLagGrowing", "CpwatchPriceFeedStale"} <= names


def test_api_and_producer_metrics_pass_promtool(kafka_settings: Settings, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api.server import create_app

    resp = TestClient(create_app()).get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert "cpwatch_records_in_total" in resp.text
    promtool_check(resp.text, "API /metrics")

    # A producer command serves its own /metrics (base port + the kind's offset).
    from producers.commands import produce_holdings

    base = free_port()
    holdings = tmp_path / "holdings.csv"
    holdings.write_text(
        "holder,kind,country,btc,as_of,avg_cost_usd,source_url,note\n"
        "SV,state,SV,6000,2024-01-01,,https://example.org/sv,test\n"
    )
    s = kafka_settings.model_copy(update={"producer_metrics_port": base - 3})
    assert produce_holdings(s, holdings, console=Console(file=io.StringIO())) == 0
    text = scrape(base)
    found = samples(text)
    sent = value(found, "cpwatch_records_out_total", stage="producer-holdings", topic="holdings")
    assert sent is not None and sent >= 1
    promtool_check(text, "producer /metrics")
