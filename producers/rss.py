"""RSS/Atom polling: conditional GETs (ETag / Last-Modified) and entries to clean articles.

HTTP is done with httpx (explicit timeouts, a size cap); feedparser only parses bytes. Nothing
here sends to Kafka: the command sends, flushes, and only then records ids and validators as
seen, so a failed delivery is retried on the next poll instead of being lost.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from cpwatch.exceptions import RecordError
from cpwatch.records import NewsArticle
from producers.clean import canonical_url, host_of, strip_html
from producers.seen import SeenStore
from producers.summary import Bad

FEED_TIMEOUT = httpx.Timeout(20.0, connect=10.0)
MAX_FEED_BYTES = 10 * 1024 * 1024
USER_AGENT = "cpwatch/0.1 (news feed poller)"


@dataclass
class FeedBatch:
    """What one poll of one feed gave: articles, bad entries, and validators to keep on success."""

    url: str
    items: list[NewsArticle | Bad] = field(default_factory=list)
    validators: dict[str, str] | None = None
    error: Bad | None = None
    not_modified: bool = False


def make_client(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(
        timeout=FEED_TIMEOUT,
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
        transport=transport,
    )


def _when(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)  # feedparser gives UTC


def entry_to_article(entry: Any, *, source: str, where: str) -> NewsArticle | Bad:
    """One feedparser entry to an article; HTML stripped, URL canonical, id from the URL."""
    title = strip_html(entry.get("title") or "")
    if not title:
        return Bad(where, "invalid entry", "entry has no title", str(entry.get("link") or ""))
    url = canonical_url(entry.get("link"))
    contents = entry.get("content") or []
    body = contents[0].get("value", "") if contents else entry.get("summary") or ""
    text = strip_html(body)
    try:
        guid = entry.get("id") or ""
        return NewsArticle(
            id=NewsArticle.make_id(url or (guid or None), source, title),
            source=source,
            url=url,
            title=title,
            text=text,
            published=_when(entry),
        )
    except (RecordError, ValueError) as exc:
        return Bad(where, "invalid entry", str(exc).splitlines()[0], url or title)


def parse_feed(content: bytes, url: str) -> FeedBatch:
    """Parse feed bytes; a document with no entries and a parse error is a bad feed."""
    import feedparser

    parsed = feedparser.parse(content, response_headers={"content-location": url})
    batch = FeedBatch(url)
    if parsed.get("bozo") and not parsed.entries:
        reason = str(parsed.get("bozo_exception") or "not an RSS/Atom document")
        batch.error = Bad(url, "bad feed", f"cannot parse feed: {reason}")
        return batch
    source = strip_html(parsed.feed.get("title") or "") or host_of(url)
    for i, entry in enumerate(parsed.entries, start=1):
        batch.items.append(entry_to_article(entry, source=source, where=f"{url}#entry{i}"))
    return batch


def fetch_feed(client: httpx.Client, url: str, store: SeenStore) -> FeedBatch:
    """One conditional GET of ``url``; 304 gives an empty batch, errors a batch with ``error``."""
    headers: dict[str, str] = {}
    known = store.validators.get(url, {})
    if "etag" in known:
        headers["If-None-Match"] = known["etag"]
    if "modified" in known:
        headers["If-Modified-Since"] = known["modified"]
    try:
        with client.stream("GET", url, headers=headers) as resp:
            if resp.status_code == 304:
                return FeedBatch(url, not_modified=True)
            if resp.status_code >= 400:
                return FeedBatch(url, error=Bad(url, "feed HTTP error", f"HTTP {resp.status_code}"))
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > MAX_FEED_BYTES:
                    return FeedBatch(url, error=Bad(url, "bad feed", "feed larger than 10 MiB"))
                chunks.append(chunk)
            validators = {
                k: v
                for k, v in (
                    ("etag", resp.headers.get("etag")),
                    ("modified", resp.headers.get("last-modified")),
                )
                if v
            }
    except httpx.HTTPError as exc:
        return FeedBatch(url, error=Bad(url, "feed unreachable", f"{type(exc).__name__}: {exc}"))
    batch = parse_feed(b"".join(chunks), url)
    batch.validators = validators
    return batch


def poll_once(client: httpx.Client, urls: Iterable[str], store: SeenStore) -> list[FeedBatch]:
    """Fetch every feed once, in order; one feed failing never stops the others."""
    return [fetch_feed(client, url, store) for url in urls]
