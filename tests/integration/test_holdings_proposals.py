"""Holdings read from the news, on the real engines: a policy event's statements become
proposals; totals are applied at once under auto-accept; `cpwatch holdings accept` applies a
purchase to the previous total."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cpwatch import topics as t
from cpwatch.records import HoldingUpdate, NewsArticle
from cpwatch.settings import Settings
from producers.kafka import Producer
from tests.conftest import run_cli, wait_for
from tests.faults.conftest import Worker, read_topic

pytestmark = pytest.mark.integration

TOTAL = NewsArticle(
    id="sv-total",
    source="wire",
    url="https://news.test/sv-total",
    title="El Salvador keeps buying bitcoin despite IMF deal",
    text=(
        "El Salvador's government kept adding to its strategic bitcoin reserve despite its IMF "
        "loan agreement. Its holdings now total about 6,240 BTC, the National Bitcoin Office "
        "said, as the central bank reviewed the bitcoin law."
    ),
    published="2025-06-02T09:00:00Z",
)
BOUGHT = NewsArticle(
    id="sv-bought",
    source="wire",
    url="https://news.test/sv-bought",
    title="El Salvador's Bitcoin Office buys more bitcoin for the national reserve",
    text=(
        "El Salvador's government bought 21 BTC for its national bitcoin reserve on Bitcoin "
        "Day, the Bitcoin Office said, in defiance of the IMF programme."
    ),
    published="2025-06-03T09:00:00Z",
)


def cli(s: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(s, *args, timeout=120)


def holdings(s: Settings) -> list[HoldingUpdate]:
    return [HoldingUpdate.parse(v) for v in read_topic(s, t.HOLDINGS, idle_ms=1500) if v]


def test_news_holdings_become_proposals_and_accepted_rows(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    s = kafka_settings.model_copy(update={"holdings_auto_accept": "total"})
    worker = Worker(s, tmp_path / "worker.log")
    worker.start()
    try:
        with Producer(s) as p:
            for a in (TOTAL, BOUGHT):
                p.send(t.NEWS, a.id, a)

        def proposed() -> list[dict[str, object]]:
            out = cli(s, "holdings", "proposals", "--json")
            assert out.returncode == 0, out.stderr
            rows = [json.loads(line) for line in out.stdout.splitlines()]
            return rows if len(rows) >= 2 else []

        rows = wait_for(proposed, timeout=120, interval=1)
        by_kind = {r["statement"]: r for r in rows}  # type: ignore[union-attr]
        assert by_kind["total"]["holder"] == "El Salvador" and by_kind["total"]["btc"] == 6240
        assert by_kind["total"]["accepted"] is True  # auto-accepted: a total
        assert by_kind["bought"]["btc"] == 21 and by_kind["bought"]["accepted"] is False
        assert "6,240 BTC" in by_kind["total"]["evidence"]

        accept = cli(s, "holdings", "accept", str(by_kind["bought"]["id"]))
        assert accept.returncode == 0, accept.stderr
        rows_now = {h.as_of.date().isoformat(): h for h in holdings(s)}
        assert rows_now["2025-06-02"].btc == 6240
        assert rows_now["2025-06-02"].source == "https://news.test/sv-total"
        assert rows_now["2025-06-03"].btc == 6261  # 6,240 + 21
        missing = cli(s, "holdings", "accept", "no-such-id")
        assert missing.returncode == 1 and "no proposal" in missing.stderr
        assert worker.alive()
    finally:
        worker.stop()
