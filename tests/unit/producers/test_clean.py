"""Pins producers.clean: canonical URLs (ids depend on them) and HTML to text."""

from __future__ import annotations

import pytest

from producers.clean import canonical_url, host_of, strip_html


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://News.Example.COM/a/B?utm_source=x&id=3#top", "https://news.example.com/a/B?id=3"),
        ("https://example.com:443/x", "https://example.com/x"),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/x?UTM_Medium=rss", "http://example.com:8080/x"),
        ("https://e.com/p?b=2&a=1&fbclid=zz", "https://e.com/p?b=2&a=1"),
        ("https://e.com/p?q=&utm_campaign=c", "https://e.com/p?q="),
        ("  https://e.com/x  ", "https://e.com/x"),
        ("mailto:someone@example.com", "mailto:someone@example.com"),
        ("not a url", "not a url"),
        ("", None),
        (None, None),
    ],
)
def test_canonical_url(raw: str | None, expected: str | None) -> None:
    assert canonical_url(raw) == expected


def test_canonical_url_is_idempotent() -> None:
    once = canonical_url("https://WWW.Example.com/x?utm_source=a&k=v#frag")
    assert canonical_url(once) == once


def test_host_of_drops_www() -> None:
    assert host_of("https://www.Example.com/x") == "example.com"
    assert host_of(None) == ""


def test_strip_html_keeps_paragraphs_drops_scripts_decodes_entities() -> None:
    html = (
        "<div><p>Pakistan &amp; El&nbsp;Salvador sign a <b>letter</b> of intent.</p>"
        "<script>var x = '<p>no</p>';</script><style>p{}</style>"
        "<p>IMF   blocks 2,000&#160;MW plan.<br/>More soon.</p></div>"
    )
    assert strip_html(html) == (
        "Pakistan & El Salvador sign a letter of intent.\nIMF blocks 2,000 MW plan.\nMore soon."
    )


def test_strip_html_plain_text_unchanged_but_tidied() -> None:
    assert strip_html("  plain   text \n\n second line ") == "plain text\nsecond line"


def test_strip_html_survives_broken_markup() -> None:
    assert strip_html("<p>unclosed <b>bold <i>text") == "unclosed bold text"
