"""Pins producers.rss: conditional GETs, entry cleaning, bad feeds and entries reported."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from cpwatch.records import NewsArticle
from producers.rss import fetch_feed, make_client, poll_once
from producers.seen import SeenStore
from producers.summary import Bad

FEED_URL = "https://feeds.example.com/policy.xml"
RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Policy Wire</title><link>https://feeds.example.com/</link>
<item><title>Pakistan &amp; El Salvador sign letter of intent</title>
<link>https://News.Example.com/pk-sv?utm_source=rss&amp;id=7#top</link>
<description>&lt;p&gt;The two governments &lt;b&gt;agreed&lt;/b&gt; to share know-how.&lt;/p&gt;
&lt;script&gt;x()&lt;/script&gt;</description>
<pubDate>Tue, 10 Jun 2025 09:30:00 +0200</pubDate><guid>pk-sv-1</guid></item>
<item><title></title><link>https://news.example.com/untitled</link></item>
<item><title>No link story</title><guid isPermaLink="false">guid-42</guid></item>
</channel></rss>"""
ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom Desk</title>
<entry><title type="html">IMF &lt;em&gt;blocks&lt;/em&gt; power plan</title>
<link href="https://atom.example.com/imf"/><id>urn:1</id><updated>2025-06-11T10:00:00Z</updated>
<content type="html">&lt;div&gt;First.&lt;br/&gt;Second.&lt;/div&gt;</content></entry></feed>"""


def _transport(seen_headers: list[httpx.Headers]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen_headers.append(request.headers)
        if request.url.host == "down.example.com":
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/atom":
            return httpx.Response(200, content=ATOM)
        if request.url.path == "/html":
            return httpx.Response(200, content=b"<html><body>not a feed")
        if request.url.path == "/gone":
            return httpx.Response(404)
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(
            200, content=RSS, headers={"ETag": '"v1"', "Last-Modified": "Tue, 10 Jun 2025"}
        )

    return httpx.MockTransport(handler)


def test_entries_become_clean_articles_and_bad_entries_are_named() -> None:
    headers: list[httpx.Headers] = []
    with make_client(_transport(headers)) as client:
        batch = fetch_feed(client, FEED_URL, SeenStore(None))
    assert batch.error is None and batch.validators == {
        "etag": '"v1"',
        "modified": "Tue, 10 Jun 2025",
    }
    first, second, third = batch.items
    assert isinstance(first, NewsArticle)
    assert first.title == "Pakistan & El Salvador sign letter of intent"
    assert first.url == "https://news.example.com/pk-sv?id=7"
    assert first.text == "The two governments agreed to share know-how."
    assert first.source == "Policy Wire"
    assert first.published == datetime(2025, 6, 10, 7, 30, tzinfo=UTC)
    assert first.id == NewsArticle.make_id(first.url, "Policy Wire", first.title)
    assert isinstance(second, Bad) and second.where == f"{FEED_URL}#entry2"
    assert isinstance(third, NewsArticle) and third.url is None
    assert third.id == NewsArticle.make_id("guid-42", "Policy Wire", "No link story")
    assert "if-none-match" not in headers[0]


def test_conditional_get_sends_validators_and_honours_304() -> None:
    headers: list[httpx.Headers] = []
    store = SeenStore(None)
    store.validators[FEED_URL] = {"etag": '"v1"', "modified": "Tue, 10 Jun 2025"}
    with make_client(_transport(headers)) as client:
        batch = fetch_feed(client, FEED_URL, store)
    assert batch.not_modified and not batch.items and batch.error is None
    assert headers[0]["if-none-match"] == '"v1"'
    assert headers[0]["if-modified-since"] == "Tue, 10 Jun 2025"


def test_atom_html_title_and_content() -> None:
    with make_client(_transport([])) as client:
        [article] = fetch_feed(client, "https://atom.example.com/atom", SeenStore(None)).items
    assert isinstance(article, NewsArticle)
    assert article.title == "IMF blocks power plan"
    assert article.text == "First.\nSecond."
    assert article.source == "Atom Desk"


def test_one_bad_feed_never_stops_the_others() -> None:
    urls = [
        "https://down.example.com/x",
        "https://feeds.example.com/gone",
        "https://feeds.example.com/html",
        FEED_URL,
    ]
    with make_client(_transport([])) as client:
        down, gone, html, ok = poll_once(client, urls, SeenStore(None))
    assert down.error is not None and down.error.kind == "feed unreachable"
    assert gone.error is not None and "HTTP 404" in gone.error.detail
    assert html.error is not None and html.error.kind == "bad feed"
    assert ok.error is None and len(ok.items) == 3
