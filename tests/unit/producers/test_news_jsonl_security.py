"""Article fields from outside (JSONL replay, HTTP ingest): web URLs only, no control or
bidirectional-override characters in what we index and show."""

from __future__ import annotations

import pytest

from producers.fields import FieldError
from producers.news_jsonl import article_from_dict


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "file:///etc/passwd", "ftp://example.org/a", "/relative/path"]
)
def test_source_url_must_be_http(url: str) -> None:
    with pytest.raises(FieldError) as info:
        article_from_dict({"title": "A title", "text": "t", "source_url": url})
    assert info.value.field == "source_url"


def test_controls_and_bidi_overrides_are_stripped() -> None:
    a = article_from_dict(
        {
            "title": "Bitcoin\x00 law \u202eevil\u202c passes",
            "text": "Line one\nline\x07 two \u2066x\u2069",
            "source_url": "https://news.example.org/a",
        }
    )
    assert a.title == "Bitcoin law evil passes"
    assert a.text == "Line one\nline two x"
