"""Producers against the real Kafka broker: every record read back and compared field by field.

Readers are plain kafka-python consumers (and kcat once), never our own code, so a bug in
our producer cannot hide behind a matching bug in our reader.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cpwatch import topics
from cpwatch.records import DeadLetter, HoldingUpdate, NewsArticle, PriceTick
from cpwatch.settings import Settings
from producers.commands import produce_holdings, produce_news, produce_prices
from producers.holdings_csv import read_holdings
from producers.kafka import DeliveryError, Producer
from producers.news_jsonl import read_jsonl
from producers.prices_csv import read_ticks
from tests.conftest import ROOT, settings_env
from tests.fakes.venues import FakeVenue

pytestmark = pytest.mark.integration
DATA = Path(str(resources.files("cpwatch") / "data"))
READ_TIMEOUT_S = 30.0


def read_topic(
    settings: Settings, topic: str, want: int, timeout: float = READ_TIMEOUT_S
) -> list[tuple[str | None, bytes]]:
    """(key, value) pairs of a topic from the beginning, once ``want`` arrived (or timeout)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        settings.topic(topic),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
        **settings.kafka_client_kwargs(),
    )
    out: list[tuple[str | None, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < want and time.monotonic() < deadline:
            for msg in consumer:
                out.append((msg.key.decode() if msg.key else None, msg.value))
    finally:
        consumer.close()
    return out


def quiet() -> Console:
    return Console(stderr=True, width=200)


def strip_fetched(article: NewsArticle) -> dict[str, Any]:
    return article.model_dump(exclude={"fetched_at"})


def test_news_jsonl_records_match_field_by_field(kafka_settings: Settings) -> None:
    path = DATA / "sample_news.jsonl"
    code = produce_news(
        kafka_settings, jsonl=path, rss=[], interval=1, speed=0, once=True, console=quiet()
    )
    assert code == 0
    expected = {a.id: a for a in read_jsonl(path) if isinstance(a, NewsArticle)}
    got = read_topic(kafka_settings, topics.NEWS, len(expected))
    assert len(got) == len(expected)
    for key, value in got:
        article = NewsArticle.parse(value)
        assert key == article.id
        assert strip_fetched(article) == strip_fetched(expected[article.id])


def test_prices_csv_ticks_match_and_bad_rows_are_dead_lettered(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "prices.csv"
    rows = (DATA / "btc_usd_daily.csv").read_text().splitlines()[:201]
    rows.insert(50, "2024-02-30,1,1,1,100,1")
    rows.insert(80, "2024-03-20,1,1,1,,1")
    path.write_text("\n".join(rows) + "\n")
    code = produce_prices(
        kafka_settings,
        csv=path,
        ws=None,
        rest=None,
        symbol="btc/usd",
        venue="replay",
        speed=0,
        url=None,
        console=quiet(),
    )
    assert code == 0
    expected = [
        t for t in read_ticks(path, venue="replay", symbol="BTC-USD") if isinstance(t, PriceTick)
    ]
    got = read_topic(kafka_settings, topics.PRICE_TICKS, len(expected))
    assert len(got) == len(expected) == 200
    # One key per venue:symbol means one partition: order is preserved end to end.
    assert [PriceTick.parse(v) for _, v in got] == expected
    assert {k for k, _ in got} == {"replay:BTC-USD"}
    dead = [DeadLetter.parse(v) for _, v in read_topic(kafka_settings, topics.DEAD_LETTER, 2)]
    assert [d.reason.split(": ")[0] for d in dead] == [f"{path}:51:date", f"{path}:81:close"]
    assert {d.stage for d in dead} == {"producer-prices"}
    assert dead[0].payload == "2024-02-30,1,1,1,100,1"


def test_holdings_rows_are_keyed_by_disclosure(kafka_settings: Settings) -> None:
    path = DATA / "treasuries.csv"
    assert produce_holdings(kafka_settings, path, console=quiet()) == 0
    expected = [h for h in read_holdings(path) if isinstance(h, HoldingUpdate)]
    got = read_topic(kafka_settings, topics.HOLDINGS, len(expected))
    assert len(got) == len(expected)
    rows = {key: HoldingUpdate.parse(value) for key, value in got}
    # One key per disclosure (holder|as_of): compaction keeps every dated row of a holder,
    # the history the treasury joins prices with, not only the latest.
    assert all(key == holding.key for key, holding in rows.items())
    assert rows == {h.key: h for h in expected}


def test_kcat_reads_what_we_produced(kafka_settings: Settings) -> None:
    # Never a quiet skip: a machine without kcat fails here and says how to fix it.
    assert shutil.which("kcat"), "kcat is missing: apt-get install -y kcat"
    path = DATA / "btc_usd_daily.csv"
    produce_prices(
        kafka_settings,
        csv=path,
        ws=None,
        rest=None,
        symbol="BTC-USD",
        venue="replay",
        speed=0,
        url=None,
        console=quiet(),
    )
    expected = [
        t for t in read_ticks(path, venue="replay", symbol="BTC-USD") if isinstance(t, PriceTick)
    ]
    out = subprocess.run(
        [
            "kcat",
            "-b",
            kafka_settings.kafka_bootstrap,
            "-C",
            "-t",
            kafka_settings.topic(topics.PRICE_TICKS),
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k\t%s\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert len(out) == len(expected)
    for line, tick in zip(out, expected, strict=True):
        key, value = line.split("\t", 1)
        assert key == "replay:BTC-USD"
        assert json.loads(value) == tick.to_dict()


def _feed_server(body: bytes) -> tuple[ThreadingHTTPServer, list[str]]:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            hits.append(self.headers.get("If-None-Match") or "")
            if self.headers.get("If-None-Match") == '"feed-v1"':
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("ETag", '"feed-v1"')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hits


RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Local Desk</title>
<item><title>Reserve bill passes</title><link>https://Local.example/a?utm_source=x</link>
<description>&lt;p&gt;Lawmakers voted.&lt;/p&gt;</description>
<pubDate>Tue, 10 Jun 2025 09:30:00 GMT</pubDate></item>
<item><title>Mining tariff raised</title><link>https://local.example/b</link></item>
</channel></rss>"""


def test_rss_poll_sends_once_and_remembers(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={"home": tmp_path})
    server, hits = _feed_server(RSS)
    url = f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    try:
        for _ in range(2):  # the second run must send nothing: ETag 304 and the seen-set
            assert (
                produce_news(
                    settings, jsonl=None, rss=[url], interval=1, speed=0, once=True, console=quiet()
                )
                == 0
            )
    finally:
        server.shutdown()
    assert hits == ["", '"feed-v1"']
    got = read_topic(settings, topics.NEWS, 3, timeout=5)  # asks for more than should exist
    assert len(got) == 2
    articles = {NewsArticle.parse(v).url: NewsArticle.parse(v) for _, v in got}
    a = articles["https://local.example/a"]
    assert (a.title, a.text, a.source) == ("Reserve bill passes", "Lawmakers voted.", "Local Desk")


@pytest.mark.parametrize("kind", ["coinbase", "kraken"])
def test_live_ws_survives_a_drop_and_flushes_on_sigterm(
    kafka_settings: Settings, kind: str
) -> None:
    prices = [60000.0 + i * 1.5 for i in range(20)]
    with FakeVenue(kind, prices, drop_after=7) as venue:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "produce",
                "prices",
                "--ws",
                kind,
                "--symbol",
                "BTC-USD",
                "--url",
                venue.url,
            ],
            env=settings_env(kafka_settings),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            got = read_topic(kafka_settings, topics.PRICE_TICKS, len(prices), timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "connection lost" in err and f"sent {len(prices)}" in err
    ticks = [PriceTick.parse(v) for _, v in got]
    assert [t.price for t in ticks] == prices
    assert {k for k, _ in got} == {f"{kind}:BTC-USD"}
    assert venue.connections == 2


def test_delivery_failures_surface_at_flush(kafka_settings: Settings) -> None:
    # The client accepts 2 MB; the broker's default limit is ~1 MB, so the broker refuses it
    # (random bytes, so compression cannot shrink it under the limit).
    with pytest.raises(DeliveryError, match="failed delivery"):
        with Producer(
            kafka_settings,
            max_request_size=4_000_000,
            delivery_timeout_ms=10_000,
            request_timeout_ms=5_000,
        ) as producer:
            producer.send(topics.NEWS, "big", os.urandom(2_000_000))
    assert producer.failed == 1 and producer.acked == 0
    # An idempotent kafka-python producer treats the refusal as fatal and aborts every batch
    # in flight with it, so the next records go through a fresh producer, which delivers.
    with Producer(kafka_settings) as fresh:
        fresh.send(topics.NEWS, "small", b"{}")
    assert fresh.failed == 0 and fresh.acked == 1


def test_rest_poller_ticks_reach_kafka(kafka_settings: Settings) -> None:
    calls: list[str] = []

    class Coinbase(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            calls.append(self.path)
            n = len(calls)
            body = json.dumps(
                {
                    "ask": "1",
                    "bid": "1",
                    "volume": "1",
                    "trade_id": 1000 + n,
                    "price": f"{70000 + n}.5",
                    "size": "0.25",
                    "time": f"2025-06-10T12:00:0{n % 10}.000000Z",
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Coinbase)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "produce",
            "prices",
            "--rest",
            "coinbase",
            "--symbol",
            "BTC/USD",
            "--url",
            f"http://127.0.0.1:{server.server_address[1]}",
        ],
        env=settings_env(kafka_settings),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        got = read_topic(kafka_settings, topics.PRICE_TICKS, 2, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        server.shutdown()
    assert proc.returncode == 0, err
    assert calls[0] == "/products/BTC-USD/ticker"
    ticks = [PriceTick.parse(v) for _, v in got[:2]]
    assert [(t.venue, t.symbol, t.price, t.size, t.seq) for t in ticks] == [
        ("coinbase", "BTC-USD", 70001.5, 0.25, 1001),
        ("coinbase", "BTC-USD", 70002.5, 0.25, 1002),
    ]
