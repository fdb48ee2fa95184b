"""English analysis and the query language on the real engine (issue 16).

Stemming and possessives come from the `english` analyzer (built into full distributions; on the
local stack from cpwatch's own stable plugin, deploy/es-plugin); AND/OR/NOT words from
api/search.py's parser. Each test works in its own index namespace.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from elasticsearch import Elasticsearch, helpers
from fastapi.testclient import TestClient

from cpwatch.settings import Settings
from sinks.indices import ENGLISH, TEMPLATE_VERSION, ensure_indices, has_english, migrate
from tests.conftest import EXTERNAL, run_cli, search_api

pytestmark = pytest.mark.integration

DOCS: list[dict[str, Any]] = [
    {
        "id": "mines",
        "title": "Kosovo shuts illegal bitcoin mines",
        "text": "Police closed three mines that drew power from the grid.",
        "countries": ["XK"],
    },
    {
        "id": "reserve",
        "title": "Texas signs a strategic bitcoin reserve into law",
        "text": "The state reserve may hold bitcoin bought with public funds.",
        "countries": ["US"],
    },
    {
        "id": "possessive",
        "title": "El Salvador's bitcoin office meets the IMF",
        "text": "The IMF reviewed the country's bitcoin purchases.",
        "countries": ["SV"],
    },
    {
        "id": "ban",
        "title": "Regulator bans crypto payments",
        "text": "The central bank said bitcoin may no longer be used to pay in shops.",
        "countries": ["TH"],
    },
    {
        "id": "arizona",
        "title": "Arizona governor vetoes reserve bill",
        "text": "The bill would have let the treasurer invest in bitcoin.",
        "countries": ["US"],
    },
]


@pytest.fixture
def english_settings(kafka_settings: Settings) -> Settings:
    s = kafka_settings
    es = Elasticsearch(**s.es_client_kwargs())  # type: ignore[arg-type]
    assert has_english(es), (
        f"{s.es_url} has no `english` analyzer: the local stack must run with the"
        " cpwatch-analysis-english plugin (cpwatch stack down && cpwatch stack up)"
    )
    ensure_indices(es, s, ["events"])
    docs = [
        {"source": "t", "published": f"2025-05-0{i + 1}T00:00:00Z", **d} for i, d in enumerate(DOCS)
    ]
    helpers.bulk(es, ({"_index": s.index("events"), "_id": d["id"], "_source": d} for d in docs))
    es.indices.refresh(index=s.index("events"))
    es.close()
    return s


@pytest.fixture
def client(english_settings: Settings) -> Iterator[TestClient]:
    with search_api(english_settings) as c:
        yield c


def _ids(client: TestClient, q: str, **params: Any) -> set[str]:
    r = client.get("/api/search", params={"q": q, "size": 100, **params})
    assert r.status_code == 200, r.text
    return {h["id"] for h in r.json()["hits"]}


@pytest.mark.skipif(EXTERNAL, reason="an external cluster brings its own analyzers")
def test_local_stack_loads_the_analysis_plugin(stack: Settings) -> None:
    plugins = httpx.get(f"{stack.es_url}/_cat/plugins?h=component", timeout=10).text.split()
    assert "cpwatch-analysis-english" in plugins


def test_english_analyzer_stems_and_drops_possessives(english_settings: Settings) -> None:
    es = Elasticsearch(**english_settings.es_client_kwargs())  # type: ignore[arg-type]
    tokens = es.indices.analyze(analyzer=ENGLISH, text="Mining reserves: El Salvador's mines")
    es.close()
    assert [t["token"] for t in tokens["tokens"]] == ["mine", "reserv", "el", "salvador", "mine"]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("mining", {"mines"}),  # the document only says "mines"
        ("mine", {"mines"}),
        ("reserves", {"reserve", "arizona"}),
        ("El Salvador's", {"possessive"}),
        ("Salvador", {"possessive"}),
        ("banned", {"ban"}),
    ],
)
def test_word_forms_match(client: TestClient, q: str, expected: set[str]) -> None:
    assert _ids(client, q) == expected


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("IMF OR mining", {"possessive", "mines"}),
        ("IMF || mines", {"possessive", "mines"}),
        ("IMF | mines", {"possessive", "mines"}),
        ("IMF AND mining", set()),
        ("IMF AND bitcoin", {"possessive"}),
        ("bitcoin NOT reserve", {"mines", "possessive", "ban"}),
        ("bitcoin -reserve", {"mines", "possessive", "ban"}),
        ("NOT bitcoin", set()),
        ("reserve Texas OR Arizona", {"reserve", "arizona"}),  # OR binds tighter than AND
        ("(IMF OR Kosovo) bitcoin", {"possessive", "mines"}),
        ('"strategic bitcoin reserve" OR vetoes', {"reserve", "arizona"}),
        ("bitcoin NOT (reserve OR IMF)", {"mines", "ban"}),
        ("the OR Kosovo", {"mines"}),  # a stop word alone matches nothing, and breaks nothing
    ],
)
def test_boolean_words_work_as_they_read(client: TestClient, q: str, expected: set[str]) -> None:
    assert _ids(client, q) == expected


@pytest.mark.parametrize(
    ("params", "param", "text"),
    [
        ({"q": "bitcoin~"}, "q", "fuzzy"),
        ({"q": "bitcoin~2 mining"}, "q", "fuzzy"),
        ({"q": '"bitcoin reserve"~3'}, "q", "proximity"),
        ({"q": "bitcoin", "country": ["XX"]}, "country", "XX"),
        ({"q": "bitcoin", "country": ["Pakistan"]}, "country", "PK"),
        ({"q": "IMF OR"}, "q", "OR"),
        ({"q": "(IMF mining"}, "q", "not closed"),
    ],
)
def test_unsupported_syntax_is_a_400_naming_the_parameter(
    client: TestClient, params: dict[str, Any], param: str, text: str
) -> None:
    r = client.get("/api/search", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["param"] == param and text in r.json()["detail"]


def test_cli_or_and_fuzzy(english_settings: Settings) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(english_settings, "search", *args, timeout=60)

    import json

    ok = cli("IMF OR mining", "--json")
    assert ok.returncode == 0, ok.stderr
    assert {h["id"] for h in json.loads(ok.stdout)["hits"]} == {"possessive", "mines"}
    bad = cli("bitcoin~")
    assert bad.returncode == 2 and "QUERY" in bad.stderr and "fuzzy" in bad.stderr
    bad = cli("bitcoin", "--country", "XX")
    assert bad.returncode == 2 and "--country" in bad.stderr


def test_migrate_moves_an_old_index_onto_the_english_template(kafka_settings: Settings) -> None:
    s = kafka_settings
    es = Elasticsearch(**s.es_client_kwargs())  # type: ignore[arg-type]
    alias = s.index("articles")
    ensure_indices(es, s, ["articles"], english=False)  # as before issue 16: -v1, no stemming
    assert list(es.indices.get_alias(name=alias)) == [f"{alias}-v1"]
    es.index(index=alias, id="m", document={"id": "m", "title": "Kosovo shuts bitcoin mines"})
    es.indices.refresh(index=alias)
    query = {"match": {"title": "mining"}}
    assert es.count(index=alias, query=query)["count"] == 0
    ensure_indices(es, s, ["articles"])  # the new template; the alias stays where it is
    assert list(es.indices.get_alias(name=alias)) == [f"{alias}-v1"]
    new = migrate(es, s, "articles", TEMPLATE_VERSION)
    assert new == f"{alias}-v{TEMPLATE_VERSION}"
    mapping = es.indices.get_mapping(index=new)[new]["mappings"]["properties"]
    assert mapping["title"]["analyzer"] == ENGLISH and mapping["text"]["analyzer"] == ENGLISH
    assert es.count(index=alias, query=query)["count"] == 1
    es.close()
