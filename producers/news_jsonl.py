"""Replay news from JSON Lines: one article per line (id,title,text,published,source_url[,source]).

Pure reading and validation; the command decides pacing and sending.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cpwatch.exceptions import RecordError
from cpwatch.records import NewsArticle
from producers.clean import (
    canonical_url,
    host_of,
    is_web_url,
    looks_like_html,
    normalise_space,
    strip_controls,
    strip_html,
)
from producers.fields import FieldError, parse_time
from producers.summary import Bad

MAX_LINE_CHARS = 1_000_000


def article_from_dict(data: dict[str, Any]) -> NewsArticle:
    """Build a ``NewsArticle``: canonical URL, clean text, given ``id`` kept, else a stable one."""
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise FieldError("title", "missing or empty")
    text = data.get("text") or ""
    if not isinstance(text, str):
        raise FieldError("text", "not a string")
    if looks_like_html(text):
        text = strip_html(text)
    text = strip_controls(text)
    raw_url = data.get("source_url") or data.get("url")
    if raw_url is not None and not isinstance(raw_url, str):
        raise FieldError("source_url", "not a string")
    url = canonical_url(raw_url)
    if url is not None and not is_web_url(url):
        raise FieldError("source_url", f"not an absolute http(s) URL: {url[:200]!r}")
    source = data.get("source") or host_of(url)
    if not isinstance(source, str):
        raise FieldError("source", "not a string")
    published = data.get("published")
    when = parse_time(published, "published") if published not in (None, "") else None
    given_id = data.get("id")
    if given_id is not None and not isinstance(given_id, (str, int)):
        raise FieldError("id", "not a string")
    article_id = str(given_id).strip() if given_id not in (None, "") else ""
    title = normalise_space(strip_controls(title))
    return NewsArticle.parse(
        {
            "id": article_id or NewsArticle.make_id(url, source, title),
            "source": source,
            "url": url,
            "title": title,
            "text": text,
            "published": when,
            "lang": data.get("lang") or "en",
        }
    )


def parse_line(line: str, where: str) -> NewsArticle | Bad:
    """One JSONL line to an article, or a ``Bad`` naming ``where`` and the failing field."""
    if len(line) > MAX_LINE_CHARS:
        return Bad(where, "line too long", f"line of {len(line)} characters", line[:2000])
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return Bad(where, "bad JSON", f"invalid JSON: {exc.msg} (column {exc.colno})", line)
    if not isinstance(data, dict):
        return Bad(where, "bad JSON", "a line must hold a JSON object", line)
    try:
        return article_from_dict(data)
    except FieldError as exc:
        return Bad(where, "invalid field", str(exc), line)
    except RecordError as exc:
        return Bad(where, "invalid field", str(exc), line)


def read_jsonl(path: Path) -> Iterator[NewsArticle | Bad]:
    """Articles of ``path`` in file order; blank lines skipped; bad lines yielded as ``Bad``."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                yield parse_line(line, f"{path}:{lineno}")
