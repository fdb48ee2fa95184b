"""The shared contract: settings, topic declarations, record parsing and its errors."""

from __future__ import annotations

import json

import pytest

from cpwatch import topics as t
from cpwatch.exceptions import RecordError
from cpwatch.records import DeadLetter, HoldingUpdate, NewsArticle, PriceTick, stable_id
from cpwatch.settings import Settings

TICK = {"venue": "coinbase", "symbol": "BTC-USD", "price": 64000.5, "ts": "2024-03-01T00:00:00Z"}


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPWATCH_TOPIC_PREFIX", "x-")
    monkeypatch.setenv("CPWATCH_ES_PASSWORD", "hunter2")
    monkeypatch.setenv("CPWATCH_ES_USERNAME", "elastic")
    s = Settings()
    assert s.topic(t.NEWS) == "x-news"
    assert s.index("articles") == "cpwatch-articles"
    assert "hunter2" not in repr(s)
    assert s.es_client_kwargs()["basic_auth"] == ("elastic", "hunter2")


def test_strict_booleans_reject_ambiguous_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPWATCH_STRICT_ENGINES", "maybe")
    with pytest.raises(ValueError, match="strict_engines"):
        Settings()


def test_topic_names_are_the_documented_defaults() -> None:
    names = {spec.name for spec in t.TOPICS}
    assert {
        "news",
        "price-ticks",
        "holdings",
        "policy-events",
        "treasury-valuations",
        "alerts",
        "deliveries",
        "dead-letter",
    } <= names
    holdings = next(s for s in t.TOPICS if s.name == t.HOLDINGS)
    assert holdings.configs() == {"cleanup.policy": "compact"}


def test_price_tick_round_trip_and_key() -> None:
    tick = PriceTick.parse(json.dumps(TICK))
    assert tick.key == "coinbase:BTC-USD"
    assert PriceTick.parse(tick.to_bytes()) == tick
    assert tick.schema_version == 1


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"price": -1}, "price"),
        ({"price": "abc"}, "price"),
        ({"ts": "2024-03-01T00:00:00"}, "ts"),  # naive datetimes are refused
        ({"venue": ""}, "venue"),
    ],
)
def test_bad_ticks_name_the_field(patch: dict[str, object], field: str) -> None:
    with pytest.raises(RecordError) as info:
        PriceTick.parse({**TICK, **patch})
    assert info.value.field == field
    assert field in str(info.value)


def test_non_finite_prices_are_refused() -> None:
    with pytest.raises(RecordError, match="price"):
        PriceTick.parse(
            b'{"venue":"v","symbol":"BTC-USD","price":Infinity,"ts":"2024-03-01T00:00:00Z"}'
        )


def test_json_bombs_and_bad_utf8_are_refused() -> None:
    with pytest.raises(RecordError, match="recursion limit"):
        NewsArticle.parse(b"[" * 100_000 + b"]" * 100_000)
    # brackets inside strings are text, not nesting
    title = "[" * 40
    assert NewsArticle.parse({"id": "a", "title": title}).title == title
    assert NewsArticle.parse(NewsArticle(id="a", title=title).to_bytes()).title == title
    with pytest.raises(RecordError):
        NewsArticle.parse(b'{"id":"a","title":"\xff\xfe"}')


def test_negative_holdings_refused() -> None:
    with pytest.raises(RecordError, match="btc"):
        HoldingUpdate.parse(
            {"holder": "h", "kind": "state", "btc": -5, "as_of": "2024-01-01T00:00:00Z"}
        )


def test_article_ids_are_deterministic() -> None:
    a = NewsArticle.make_id("https://example.org/a", "wire", "Title")
    assert a == NewsArticle.make_id("https://example.org/a", "other", "Other title")
    assert NewsArticle.make_id(None, "wire", "Title") == stable_id("wire", "Title")
    assert NewsArticle.make_id(None, "wire", "Title") != NewsArticle.make_id(
        None, "wire", "Title 2"
    )


def test_dead_letter_keeps_payload_and_reason() -> None:
    d = DeadLetter.of("stage", "bad", b"\xffabc", topic="news", partition=1, offset=7)
    assert d.payload.endswith("abc") and d.offset == 7
    assert DeadLetter.parse(d.to_bytes()) == d
