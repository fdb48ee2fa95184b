"""Dashboard JSON without engines: firing count = gauge, below-cost presentation, lag without
changelogs, backlog by publication, events linked to a holder on its series."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from api import routes_dashboard as rd
from api.routes_subscriptions import es_client, subscription_settings
from api.server import create_app
from cpwatch import metrics
from cpwatch.settings import Settings

BELOW = {  # a below-cost crossing: value is btc x price, threshold the cost per coin
    "rule": "below-cost",
    "holder": "Strategy (MicroStrategy)",
    "ts": "2026-02-05T00:00:00Z",
    "direction": "down",
    "value_usd": 59.7e9,
    "threshold_usd": 75_694.0,
    "price": 62_000.0,
    "btc": 762_099.0,
}
LEVEL_UP = {**BELOW, "rule": "el-salvador-500m", "holder": "El Salvador", "direction": "up"}
LEVEL_DOWN = {**LEVEL_UP, "ts": "2026-02-06T00:00:00Z", "direction": "down"}
ACKED = {**BELOW, "holder": "Metaplanet", "acked_at": "2026-02-07T00:00:00Z"}
ALERTS = [BELOW, LEVEL_UP, LEVEL_DOWN, ACKED]


class Resp(dict):
    @property
    def body(self) -> dict[str, Any]:
        return self


class FakeEs:
    """Answers the dashboard's searches from fixed documents; records each request."""

    def __init__(self, events: list[dict[str, Any]] | None = None) -> None:
        self.events = events or []
        self.calls: list[dict[str, Any]] = []

    def options(self, **_: Any) -> FakeEs:
        return self

    def search(self, *, index: str, **body: Any) -> Resp:
        self.calls.append({"index": index, **body})
        if index.endswith("alerts") and "aggs" in body:
            holders: dict[str, dict[str, list[dict[str, Any]]]] = {}
            for a in ALERTS:
                holders.setdefault(a["holder"], {}).setdefault(a["rule"], []).append(a)
            buckets = [
                {
                    "key": h,
                    "rule": {
                        "buckets": [
                            {
                                "key": r,
                                "latest": {
                                    "hits": {
                                        "hits": [{"_source": max(docs, key=lambda d: d["ts"])}]
                                    }
                                },
                            }
                            for r, docs in rules.items()
                        ]
                    },
                }
                for h, rules in holders.items()
            ]
            return Resp(aggregations={"holder": {"buckets": buckets}})
        if index.endswith("alerts"):
            hits = sorted(ALERTS, key=lambda a: a["ts"], reverse=True)[: body["size"]]
            return Resp(hits={"hits": [{"_source": a} for a in hits]})
        if index.endswith("treasury-valuations"):
            points = [{"ts": f"2025-0{m}-01T00:00:00Z", "value_usd": m * 1e8} for m in (9, 8, 7)]
            return Resp(hits={"hits": [{"_source": p} for p in points]})
        return Resp(hits={"hits": [{"_source": e} for e in self.events]})


def client(es: FakeEs) -> TestClient:
    app = create_app()
    app.dependency_overrides[subscription_settings] = Settings
    app.dependency_overrides[es_client] = lambda: es
    return TestClient(app)


def test_firing_list_and_the_gauge_are_one_count() -> None:
    es = FakeEs()
    body = client(es).get("/api/dashboard/alerts").json()
    firing = [(a["holder"], a["rule"], a["direction"]) for a in body["firing"]]
    # latest per (rule, holder), newest first; the acked one is not firing
    assert firing == [
        ("El Salvador", "el-salvador-500m", "down"),
        ("Strategy (MicroStrategy)", "below-cost", "down"),
    ]
    text = client(es).get("/metrics").text
    assert "cpwatch_alerts_firing 2.0" in text
    assert metrics.REGISTRY.get_sample_value("cpwatch_alerts_firing") == len(body["firing"])


def test_below_cost_alerts_compare_price_with_cost_per_coin() -> None:
    body = client(FakeEs()).get("/api/dashboard/alerts").json()
    by_rule = {a["rule"]: a for a in body["recent"]}
    assert by_rule["below-cost"]["rule_type"] == "below_cost"
    assert by_rule["below-cost"]["measure"] == "price"
    assert by_rule["el-salvador-500m"]["measure"] == "value"


def test_lag_leaves_out_changelogs() -> None:
    text = "\n".join(
        [
            "# HELP cpwatch_consumer_lag x",
            'cpwatch_consumer_lag{topic="news",partition="0"} 3',
            'cpwatch_consumer_lag{topic="news",partition="1"} 2',
            'cpwatch_consumer_lag{topic="changelog",partition="0"} 5000',
            'cpwatch_records_in_total{stage="classify-news",topic="news"} 7',
        ]
    )
    summary = rd.summarize(rd.parse_metrics(text))
    assert summary["lag"] == {"news": 5.0}
    assert summary["records"] == {"classify-news": {"in": 7.0}}


def test_backlog_is_the_latest_published_in_ingestion_order() -> None:
    events = [
        {"id": "b", "published": "2025-03-01T00:00:00Z", "ingested_at": "2026-01-01T00:00:02"},
        {"id": "a", "published": "2025-01-01T00:00:00Z", "ingested_at": "2026-01-01T00:00:01"},
    ]
    es = FakeEs(events)
    docs = rd._new_events(es, Settings(), None, set())  # noqa: SLF001
    assert es.calls[0]["sort"][0] == {"published": {"order": "desc", "missing": "_last"}}
    assert [d["id"] for d in docs] == ["a", "b"]  # the stream's cursor follows ingested_at


def test_series_carries_the_events_linked_to_the_holder() -> None:
    linked = {
        "id": "sv-law",
        "title": "El Salvador amends its bitcoin law",
        "published": "2025-08-01T00:00:00Z",
    }
    es = FakeEs([linked])
    body = client(es).get("/api/holders/El%20Salvador/series").json()
    assert body["events"] == [linked]
    query = es.calls[-1]["query"]["bool"]["filter"]
    assert {"term": {"holders": "El Salvador"}} in query
    assert query[1]["range"]["published"] == {
        "gte": "2025-07-01T00:00:00Z",
        "lte": "2025-09-01T00:00:00Z",
    }
