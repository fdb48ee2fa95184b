"""The search query builder: validation, filters, sort/pagination and response shaping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from api.search import (
    MAX_QUERY_CHARS,
    QUERY_FLAGS,
    QueryError,
    build_request,
    decode_cursor,
    encode_cursor,
    parse_params,
    shape_response,
    split_highlight,
)


def test_query_is_simple_query_string_with_safe_flags() -> None:
    body = build_request(parse_params("IMF mining"))
    (must,) = body["query"]["bool"]["must"]
    sqs = must["simple_query_string"]
    assert sqs["query"] == "IMF mining"
    assert sqs["fields"] == ["title^3", "text", "evidence"]
    assert sqs["default_operator"] == "and" and sqs["lenient"] is False
    assert set(sqs["flags"].split("|")) == set(QUERY_FLAGS.split("|"))
    assert not {"FUZZY", "NEAR", "SLOP", "ALL"} & set(sqs["flags"].split("|"))
    assert body["query"]["bool"]["filter"] == []
    assert "script" not in repr(body) and "regexp" not in repr(body)


def test_empty_query_matches_all() -> None:
    body = build_request(parse_params("   "))
    assert body["query"]["bool"]["must"] == [{"match_all": {}}]


def test_filters_or_within_and_across_fields() -> None:
    p = parse_params(
        "bitcoin",
        category=["reserve", "ban"],
        country=["sv", "PK"],
        org=["IMF"],
        since="2025-01-01",
        until="2025-05-31",
    )
    filters = build_request(p)["query"]["bool"]["filter"]
    assert {"terms": {"categories": ["reserve", "ban"]}} in filters
    assert {"terms": {"countries": ["SV", "PK"]}} in filters  # country codes upper-cased
    assert {"terms": {"orgs": ["IMF"]}} in filters
    # A bare `until` date covers its whole day: strictly before the next midnight.
    assert {
        "range": {
            "published": {"gte": "2025-01-01T00:00:00+00:00", "lt": "2025-06-01T00:00:00+00:00"}
        }
    } in filters


def test_alerts_use_ts_and_fingerprint() -> None:
    p = parse_params("drawdown", index="alerts", since="2025-01-01T12:00:00+02:00")
    body = build_request(p)
    assert body["query"]["bool"]["filter"] == [
        {"range": {"ts": {"gte": "2025-01-01T10:00:00+00:00"}}}
    ]
    assert [next(iter(s)) for s in body["sort"]] == ["_score", "ts", "fingerprint"]
    assert body["aggs"]["published"]["date_histogram"]["field"] == "ts"
    assert "highlight" not in body


def test_sort_facets_and_highlight() -> None:
    body = build_request(parse_params("x", size=5))
    assert [next(iter(s)) for s in body["sort"]] == ["_score", "published", "id"]
    assert body["size"] == 6 and body["track_total_hits"] is True and body["timeout"]
    assert {"categories", "countries", "orgs", "sources", "published"} == set(body["aggs"])
    assert body["aggs"]["sources"]["terms"]["field"] == "source"
    hist = body["aggs"]["published"]["date_histogram"]
    assert hist["calendar_interval"] == "month" and hist["field"] == "published"
    assert set(body["highlight"]["fields"]) == {"title", "text"}
    assert "search_after" not in body


def test_cursor_round_trip_into_search_after() -> None:
    values = [3.5416853, 1750035600000, "metaplanet-buys"]
    token = encode_cursor(values)
    assert "=" not in token and "/" not in token and "+" not in token  # URL-safe as is
    assert decode_cursor(token) == values
    body = build_request(parse_params("x", after=token))
    assert body["search_after"] == values
    # Missing dates sort last as Long.MIN_VALUE; a missing id as null: both round-trip.
    assert decode_cursor(encode_cursor([1.0, -(2**63), None])) == [1.0, -(2**63), None]


@pytest.mark.parametrize(
    "token",
    [
        "not base64!!",
        encode_cursor([1.0, 2]),
        encode_cursor(["a", 1, "x"]),
        encode_cursor([1.0, 1.5, "x"]),
        encode_cursor([True, 1, "x"]),
        "e30",
        "x" * 2000,
        encode_cursor([1.0, 2**63, "x"]),
    ],
)
def test_bad_cursors_are_rejected(token: str) -> None:
    with pytest.raises(QueryError) as exc:
        parse_params("x", after=token)
    assert exc.value.param == "after"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"q": "x" * (MAX_QUERY_CHARS + 1)}, "q"),
        ({"q": "*coin"}, "q"),
        ({"q": "bitcoin -*coin"}, "q"),
        ({"q": "?oin"}, "q"),
        ({"q": "/bit.*coin/"}, "q"),
        ({"q": "a (/re[gx]/)"}, "q"),
        ({"q": "ab*"}, "q"),
        ({"q": "mini* bitc* reser* regul*"}, "q"),
        ({"q": "bit\x00coin"}, "q"),
        ({"q": " ".join(["w"] * 40)}, "q"),
        ({"size": 0}, "size"),
        ({"size": 101}, "size"),
        ({"index": "treasury-valuations"}, "index"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-13-01"}, "until"),
        ({"since": "2025-06-01", "until": "2025-05-01"}, "until"),
        ({"category": [f"c{i}" for i in range(21)]}, "category"),
        ({"country": ["x" * 101]}, "country"),
        ({"index": "alerts", "org": ["IMF"]}, "org"),
    ],
)
def test_validation_names_the_parameter(kwargs: dict[str, Any], param: str) -> None:
    q = kwargs.pop("q", "bitcoin")
    with pytest.raises(QueryError) as exc:
        parse_params(q, **kwargs)
    assert exc.value.param == param
    assert str(exc.value).startswith(f"{param}: ")


@pytest.mark.parametrize(
    "q",
    [
        'bitcoin "strategic reserve"',
        "mining | energy",
        "-ban reserve",
        "minin* bitco*",
        '(imf | "world bank") loan',
        "BTC/USD",
        "field:value",
        "a*b",
        "1,000 MW",
        "bitcoin\\*",
    ],
)
def test_ordinary_queries_pass(q: str) -> None:
    assert parse_params(q).q == q


def test_dates_accept_z_and_naive_as_utc() -> None:
    p = parse_params("", since="2025-05-28T10:00:00Z", until="2025-05-28T12:00:00")
    assert p.since == datetime(2025, 5, 28, 10, tzinfo=UTC)
    assert p.until == datetime(2025, 5, 28, 12, tzinfo=UTC)


def _resp(n: int) -> dict[str, Any]:
    hits = [
        {
            "_id": f"d{i}",
            "_score": 2.0 - i / 10,
            "sort": [2.0 - i / 10, 1000 - i, f"d{i}"],
            "_source": {
                "id": f"d{i}",
                "title": f"t{i}",
                "categories": ["reserve"],
                "countries": "SV",
                "published": "2025-05-01T00:00:00Z",
                "source": "w",
            },
            "highlight": {"title": ["<em>t</em>"]},
        }
        for i in range(n)
    ]
    return {
        "hits": {"total": {"value": 42, "relation": "eq"}, "hits": hits},
        "aggregations": {
            "categories": {"buckets": [{"key": "reserve", "doc_count": 42}]},
            "published": {"buckets": [{"key": 1, "key_as_string": "2025-05", "doc_count": 42}]},
        },
    }


def test_shape_response_contract_and_next_cursor() -> None:
    p = parse_params("t", size=3)
    out = shape_response(p, _resp(4))  # size + 1 came back: there is a next page
    assert out["total"] == 42 and len(out["hits"]) == 3
    hit = out["hits"][0]
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
    assert hit["index"] == "events" and hit["countries"] == ["SV"]
    assert out["facets"] == {"categories": [["reserve", 42]], "published": [["2025-05", 42]]}
    assert decode_cursor(out["next"]) == [1.8, 998, "d2"]  # the last hit shown
    assert shape_response(p, _resp(3))["next"] is None


def test_alert_hits_are_mapped_to_the_contract() -> None:
    p = parse_params("", index="alerts")
    resp = {
        "hits": {
            "total": {"value": 1},
            "hits": [
                {
                    "_id": "f1",
                    "_score": 1.0,
                    "sort": [1.0, 5, "f1"],
                    "_source": {
                        "fingerprint": "f1",
                        "rule": "level",
                        "direction": "down",
                        "holder": "El Salvador",
                        "ts": "2025-04-07T00:00:00Z",
                    },
                }
            ],
        }
    }
    (hit,) = shape_response(p, resp)["hits"]
    assert hit == {
        "id": "f1",
        "index": "alerts",
        "title": "level down El Salvador",
        "categories": [],
        "countries": [],
        "published": "2025-04-07T00:00:00Z",
        "score": 1.0,
        "highlight": {},
    }


def test_split_highlight_decodes_entities() -> None:
    assert split_highlight("El Salvador&#x27;s <em>IMF</em> deal") == [
        ("El Salvador's ", False),
        ("IMF", True),
        (" deal", False),
    ]


def test_api_maps_errors_to_400_and_503_without_elasticsearch() -> None:
    """The route layer alone: validation never reaches the engine; an unreachable one is 503."""
    from fastapi.testclient import TestClient

    from api.routes_search import search_settings
    from api.server import create_app
    from cpwatch.settings import Settings

    app = create_app()
    app.dependency_overrides[search_settings] = lambda: Settings(
        es_url="http://127.0.0.1:9", es_request_timeout=2
    )
    client = TestClient(app)
    r = client.get("/api/search", params={"q": "bitcoin", "size": 500})
    assert r.status_code == 400 and r.json()["param"] == "size"
    r = client.get("/api/search", params={"q": "bitcoin", "country": ["x" * 200]})
    assert r.status_code == 400 and r.json()["param"] == "country"
    r = client.get("/api/search", params={"q": "bitcoin"})
    assert r.status_code == 503 and "search on cpwatch-events failed" in r.json()["detail"]
    schema = client.get("/openapi.json").json()["paths"]["/api/search"]["get"]
    assert {p["name"] for p in schema["parameters"]} == {
        "q",
        "category",
        "country",
        "org",
        "since",
        "until",
        "index",
        "size",
        "after",
    }
