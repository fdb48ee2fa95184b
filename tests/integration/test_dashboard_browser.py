"""The web dashboard in a real browser (Debian's chromium, driven by Playwright) against a real
worker, Kafka, Elasticsearch and the API under uvicorn: live feed (ordered by publication),
holder chart with its linked policy event, alerts (below-cost as price vs cost), search."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaProducer

from app.supervisor import sample_file
from cpwatch import topics as t
from cpwatch.records import HoldingUpdate, NewsArticle, PriceTick
from cpwatch.settings import Settings
from tests.conftest import ROOT, free_port, settings_env, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOLDER = "El Salvador"  # the packaged rules have a $500M level rule for it
LATE_ID = "norway-mining-ban"  # produced only after the page has loaded
LINKED_ID = "sv-bitcoin-day"  # an SV event published inside the chart's time range
AVG_COST = 84_000  # the ticks cross it both ways: below-cost alerts
SCREENSHOT = ROOT / "artifacts" / "dashboard.png"


@pytest.fixture
def api_url(kafka_settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The API under uvicorn in a child process, with this test's settings."""
    port = free_port()
    log = open(tmp_path / "api.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.server:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=settings_env(kafka_settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=30)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _articles() -> dict[str, NewsArticle]:
    lines = sample_file("sample_news.jsonl").read_text().splitlines()
    arts = [NewsArticle.model_validate(json.loads(line)) for line in lines if line.strip()]
    return {a.id: a for a in arts}


def _send_news(producer: KafkaProducer, s: Settings, arts: list[NewsArticle]) -> None:
    for a in arts:
        producer.send(s.topic(t.NEWS), key=a.id.encode(), value=a.to_bytes())
    producer.flush()


def _send_treasury(producer: KafkaProducer, s: Settings) -> datetime:
    """6,000 BTC valued over 20 minutes of ticks, crossing $500M (= $83,333/BTC) both ways."""
    holding = HoldingUpdate(
        holder=HOLDER,
        name=HOLDER,
        kind="state",
        country="SV",
        btc=6000,
        as_of=datetime(2024, 1, 1, tzinfo=UTC),
        avg_cost_usd=AVG_COST,
    )
    producer.send(s.topic(t.HOLDINGS), key=HOLDER.encode(), value=holding.to_bytes())
    producer.flush()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    prices = [80_000 + 800 * i for i in range(12)] + [88_000 - 1_500 * i for i in range(8)]
    for i, price in enumerate(prices):
        tick = PriceTick(
            venue="replay", symbol="BTC-USD", price=price, ts=start + timedelta(minutes=i), seq=i
        )
        producer.send(s.topic(t.PRICE_TICKS), key=tick.key.encode(), value=tick.to_bytes())
    producer.flush()
    return start


def _linked_event(published: datetime) -> NewsArticle:
    """Linked to El Salvador by its actor country (streams/holder_links)."""
    return NewsArticle(
        id=LINKED_ID,
        title="El Salvador adds 21 bitcoin to its national reserve",
        text="El Salvador's Bitcoin Office said the government bought 21 more bitcoin for the "
        "national reserve on Sunday, as it does every year on Bitcoin Day.",
        published=published,
        url="https://news.example.org/sv-bitcoin-day",
    )


def test_dashboard_live_feed_chart_and_search(
    kafka_settings: Settings, worker: subprocess.Popen[bytes], api_url: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    s = kafka_settings
    es = Elasticsearch(**s.es_client_kwargs())
    articles = _articles()
    late = articles.pop(LATE_ID)
    producer = KafkaProducer(**s.kafka_client_kwargs())
    start = _send_treasury(producer, s)
    linked = _linked_event(start + timedelta(minutes=10))
    _send_news(producer, s, [*articles.values(), linked])

    def count(name: str) -> int:
        try:
            es.indices.refresh(index=s.index(name))
            return int(es.count(index=s.index(name))["count"])
        except Exception:  # noqa: BLE001 - aliases appear once the worker prepared them
            return 0

    wait_for(lambda: count("events") >= 5, timeout=120)
    wait_for(lambda: count("treasury-valuations") >= 10, timeout=60)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(api_url + "/")
            expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
            expect(page.locator("#feed li").first).to_be_visible(timeout=15_000)
            assert page.locator(f'#feed li[data-id="{LATE_ID}"]').count() == 0
            page.evaluate("window.__loadedOnce = true")  # gone if the page reloads

            produced = time.monotonic()
            _send_news(producer, s, [late])
            item = page.locator(f'#feed li[data-id="{LATE_ID}"]')
            expect(item).to_be_visible(timeout=60_000)
            print(
                f"\nevent produced -> shown in the live feed: {time.monotonic() - produced:.1f} s"
            )
            expect(item).to_contain_text(late.title[:40])
            assert page.evaluate("window.__loadedOnce === true"), "the page was reloaded"

            chart = page.locator(f'.chart[data-holder="{HOLDER}"]')
            expect(chart.locator("circle.pt").nth(9)).to_be_attached(timeout=30_000)
            expect(chart.locator("line.level")).to_have_count(1)  # el-salvador-500m
            # The linked event is a marker on the holder's chart; hovering shows its title.
            marker = chart.locator(f'g.event-marker[data-id="{LINKED_ID}"]')
            expect(marker.locator("title")).to_contain_text(linked.title, timeout=30_000)
            marker.locator("circle").hover()

            # Feed newest published first, whatever order the events were ingested in.
            published = page.evaluate(
                "[...document.querySelectorAll('#feed li')].map((li) => +li.dataset.published)"
            )
            assert published == sorted(published, reverse=True) and len(published) > 5

            # Below-cost alerts compare price with cost per coin, never value with cost.
            below = page.locator("#recent li.alert", has_text="below-cost").first
            expect(below).to_contain_text("vs cost $84.0k/BTC", timeout=30_000)
            # One firing count: the list, its heading and the health line agree.
            expect(page.locator("#firing li.alert").first).to_be_visible()
            n = page.locator("#firing li.alert").count()
            expect(page.locator("#firing-count")).to_have_text(f"({n})")
            expect(page.locator("#health-detail")).to_contain_text(f"{n} firing", timeout=15_000)

            page.fill("#q", "IMF AND mining")
            page.click("#search-form button")
            expect(page.locator("#hits li").first).to_contain_text("IMF", timeout=10_000)
            expect(page.locator("#facets")).to_contain_text("PK")

            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            print(f"screenshot: {SCREENSHOT.relative_to(ROOT)}")
        finally:
            browser.close()
            producer.close()
    assert worker.poll() is None
