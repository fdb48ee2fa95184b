"""Search on the real Elasticsearch: ranking, highlights, filters, facets, pagination, errors.

The test writes its own ~30 events straight into its ``events`` alias, so every expected count
below is computed from the documents it indexed.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from elasticsearch import Elasticsearch, helpers
from fastapi.testclient import TestClient

from cpwatch.settings import Settings
from sinks.indices import ensure_indices
from tests.conftest import run_cli, search_api

pytestmark = pytest.mark.integration

SEED = {
    "id": "seed-pk-sv",
    "source": "wire-a",
    "published": "2025-05-28T10:00:00Z",
    "title": "Pakistan and El Salvador sign bitcoin letter of intent as IMF blocks mining "
    "power plan",
    "text": "Pakistan's Crypto Council signed a letter of intent with El Salvador's Bitcoin "
    "Office. "
    "The International Monetary Fund objected to Islamabad's plan to allocate 2,000 "
    "megawatts of surplus electricity to bitcoin mining, a breach of its IMF programme.",
    "categories": ["cooperation", "multilateral", "mining_energy", "reserve"],
    "countries": ["PK", "SV"],
    "orgs": ["IMF", "Bitcoin Office"],
}
# Both words appear in these too, but only once each and in the body: they must rank lower.
WEAKER = [
    {
        "id": "weak-kz",
        "title": "Kazakhstan raises power tariffs for bitcoin miners",
        "text": "The energy ministry said bitcoin mining farms will pay more; an IMF mission had "
        "urged subsidy reform last year.",
        "countries": ["KZ"],
        "orgs": ["IMF"],
    },
    {
        "id": "weak-ar",
        "title": "Argentina reviews bitcoin policy after loan talks",
        "text": "Officials cited the IMF agreement; small-scale mining of bitcoin in Patagonia "
        "continues.",
        "countries": ["AR"],
        "orgs": ["IMF"],
    },
]
CATEGORIES = ["regulation", "ban", "reserve", "tax", "cbdc", "mining_energy"]
COUNTRIES = ["US", "CN", "SV", "IN", "BR", "NG"]
ORGS = ["SEC", "FATF", "World Bank", "ECB"]
SOURCES = ["wire-a", "wire-b", "wire-c"]
SUBJECTS = [
    "stablecoin bill",
    "exchange licensing",
    "capital gains on bitcoin",
    "central bank digital currency pilot",
    "crypto ban",
    "bitcoin reserve proposal",
]


def _docs() -> list[dict[str, Any]]:
    rnd = random.Random(7)  # noqa: S311 - test data, not secrets
    docs = [dict(SEED)]
    for i, d in enumerate(WEAKER):
        docs.append(
            {
                "source": SOURCES[i],
                "published": f"2025-0{i + 3}-15T08:00:00Z",
                "categories": ["mining_energy"],
                **d,
            }
        )
    for i in range(27):
        subject = SUBJECTS[i % len(SUBJECTS)]
        country = COUNTRIES[i % len(COUNTRIES)]
        docs.append(
            {
                "id": f"gen-{i:02d}",
                "source": SOURCES[i % 3],
                # Some share a timestamp, so only the id tiebreak orders them.
                "published": f"2025-{1 + i % 6:02d}-{1 + (i // 6) * 3:02d}T12:00:00Z"
                if i % 5
                else "2025-06-30T00:00:00Z",
                "title": f"{country} lawmakers debate {subject}",
                "text": f"Parliament in {country} discussed the {subject} on day {i}; bitcoin "
                f"traders watched the vote {'closely' if i % 2 else 'warily'}.",
                "categories": rnd.sample(CATEGORIES, k=1 + i % 3),
                "countries": [country] if i % 4 or country == "US" else [country, "US"],
                "orgs": rnd.sample(ORGS, k=i % 3),
            }
        )
    return docs


DOCS = _docs()


@pytest.fixture
def indexed(kafka_settings: Settings) -> Settings:
    s = kafka_settings
    es = Elasticsearch(**s.es_client_kwargs())  # type: ignore[arg-type]
    ensure_indices(es, s)
    helpers.bulk(es, ({"_index": s.index("events"), "_id": d["id"], "_source": d} for d in DOCS))
    helpers.bulk(
        es,
        [
            {
                "_index": s.index("alerts"),
                "_id": f"a{i}",
                "_source": {
                    "fingerprint": f"a{i}",
                    "rule": rule,
                    "holder": "El Salvador",
                    "direction": "down",
                    "ts": f"2025-04-0{i + 1}T00:00:00Z",
                    "value_usd": 5e8,
                    "threshold_usd": 5e8,
                },
            }
            for i, rule in enumerate(["drawdown-30", "below-cost", "drawdown-30"])
        ],
    )
    es.indices.refresh(index=[s.index("events"), s.index("alerts")])
    es.close()
    return s


@pytest.fixture
def client(indexed: Settings) -> Iterator[TestClient]:
    with search_api(indexed) as c:
        yield c


def _get(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get("/api/search", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_imf_mining_ranks_the_seed_story_first(client: TestClient) -> None:
    out = _get(client, q="IMF mining")
    ids = [h["id"] for h in out["hits"]]
    assert ids[0] == "seed-pk-sv" and set(ids) == {"seed-pk-sv", "weak-kz", "weak-ar"}
    assert out["total"] == 3
    top = out["hits"][0]
    assert top["title"] == SEED["title"] and top["countries"] == ["PK", "SV"]
    assert "<em>IMF</em>" in top["highlight"]["title"][0]
    assert "<em>mining</em>" in top["highlight"]["title"][0]
    assert any("<em>mining</em>" in s for s in top["highlight"]["text"])
    assert top["score"] > out["hits"][1]["score"]


def _expected_facets(docs: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    facets: dict[str, Counter[str]] = {
        n: Counter() for n in ("categories", "countries", "orgs", "sources", "published")
    }
    for d in docs:
        facets["categories"].update(d["categories"])
        facets["countries"].update(d["countries"])
        facets["orgs"].update(d.get("orgs", []))
        facets["sources"][d["source"]] += 1
        facets["published"][d["published"][:7]] += 1
    return facets


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"category": ["reserve"]},
        {"category": ["reserve", "ban"], "country": ["US"]},
        {"country": ["sv", "NG"], "org": ["IMF", "FATF"]},
        {"since": "2025-03-01", "until": "2025-04-30"},
        {"category": ["tax"], "since": "2025-02-15T00:00:00Z"},
    ],
)
def test_filters_and_facets_agree_with_the_indexed_docs(
    client: TestClient, params: dict[str, Any]
) -> None:
    def keep(d: dict[str, Any]) -> bool:
        ok = True
        if "category" in params:
            ok &= bool(set(params["category"]) & set(d["categories"]))
        if "country" in params:
            ok &= bool({c.upper() for c in params["country"]} & set(d["countries"]))
        if "org" in params:
            ok &= bool(set(params["org"]) & set(d.get("orgs", [])))
        if "since" in params:
            ok &= d["published"] >= params["since"].replace("T00:00:00Z", "")
        if "until" in params:
            ok &= d["published"][:10] <= params["until"]
        return ok

    expected = [d for d in DOCS if keep(d) and "bitcoin" in (d["title"] + d["text"]).lower()]
    assert expected, "the case must select something"
    out = _get(client, q="bitcoin", size=100, **params)
    assert out["total"] == len(expected)
    assert {h["id"] for h in out["hits"]} == {d["id"] for d in expected}
    want = _expected_facets(expected)
    for name, counts in want.items():
        got = {k: n for k, n in out["facets"][name]}
        assert got == dict(counts), name


@pytest.mark.parametrize("q", ["bitcoin", ""])
def test_pagination_walks_every_hit_once(client: TestClient, q: str) -> None:
    full = _get(client, q=q, size=100)
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        out = _get(client, q=q, size=5, **({"after": after} if after else {}))
        pages += 1
        assert out["total"] == full["total"]
        seen += [h["id"] for h in out["hits"]]
        after = out["next"]
        if after is None:
            break
        assert len(out["hits"]) == 5
    assert len(seen) == len(set(seen)), "no duplicates"
    assert seen == [h["id"] for h in full["hits"]], "same order as one big page, no gaps"
    assert pages == -(-full["total"] // 5)
    if q == "":
        assert len(seen) == len(DOCS)


def test_alerts_are_searchable(client: TestClient) -> None:
    out = _get(client, q="drawdown-30", index="alerts")
    assert out["total"] == 2
    assert out["hits"][0]["title"] == "drawdown-30 down El Salvador"
    assert out["hits"][0]["published"] == "2025-04-03T00:00:00Z"  # newest first on equal score
    assert dict(map(tuple, out["facets"]["rules"])) == {"drawdown-30": 2}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"q": "bitcoin", "size": 0}, "size"),
        ({"q": "bitcoin", "size": "many"}, "size"),
        ({"q": "x" * 501}, "q"),
        ({"q": "*coin"}, "q"),
        ({"q": "bitcoin", "index": "nope"}, "index"),
        ({"q": "bitcoin", "after": "garbage"}, "after"),
        ({"q": "bitcoin", "since": "last week"}, "since"),
    ],
)
def test_bad_requests_are_400_naming_the_parameter(
    client: TestClient, params: dict[str, Any], param: str
) -> None:
    r = client.get("/api/search", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["param"] == param and param in r.json()["detail"]


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(settings, "search", *args, timeout=60)


def test_cli_json_contract_and_errors(indexed: Settings) -> None:
    proc = _cli(indexed, "IMF mining", "--json", "--size", "2")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"total", "hits", "facets", "next"} <= set(out)
    assert out["total"] == 3 and len(out["hits"]) == 2 and out["next"]
    for hit in out["hits"]:
        assert {
            "id",
            "index",
            "title",
            "categories",
            "countries",
            "published",
            "score",
            "highlight",
        } <= set(hit)
    assert out["hits"][0]["id"] == "seed-pk-sv"
    assert all(isinstance(b, list) and len(b) == 2 for b in out["facets"]["categories"])
    more = _cli(indexed, "IMF mining", "--json", "--size", "2", "--after", out["next"])
    page2 = json.loads(more.stdout)
    assert len(page2["hits"]) == 1 and page2["next"] is None

    table = _cli(indexed, "IMF mining", "--category", "reserve")
    assert table.returncode == 0 and "1 hit(s)" in table.stdout and "categories:" in table.stdout

    for bad, name in (
        (["bitcoin", "--size", "0"], "--size"),
        (["x" * 501], "QUERY"),
        (["bitcoin", "--until", "soon"], "--until"),
    ):
        proc = _cli(indexed, *bad)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert name in proc.stderr
