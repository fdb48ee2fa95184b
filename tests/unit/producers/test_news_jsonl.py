"""Pins producers.news_jsonl: field mapping, ids, dates, and errors naming file:line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from cpwatch.records import NewsArticle
from producers.news_jsonl import read_jsonl
from producers.summary import Bad


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "news.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_fields_mapped_and_id_kept(tmp_path: Path) -> None:
    line = json.dumps(
        {
            "id": "given-1",
            "title": " Title ",
            "text": "Body",
            "published": "2025-06-10",
            "source_url": "https://WWW.Example.com/a?utm_source=rss#x",
        }
    )
    [article] = list(read_jsonl(_write(tmp_path, line)))
    assert isinstance(article, NewsArticle)
    assert article.id == "given-1"
    assert article.title == "Title"
    assert article.url == "https://www.example.com/a"
    assert article.source == "example.com"
    assert article.published == datetime(2025, 6, 10, tzinfo=UTC)


def test_missing_id_gets_stable_id_from_canonical_url(tmp_path: Path) -> None:
    a = json.dumps({"title": "T", "source_url": "https://e.com/x?utm_medium=a"})
    b = json.dumps({"title": "T", "source_url": "https://E.com/x"})
    first, second = list(read_jsonl(_write(tmp_path, a, b)))
    assert isinstance(first, NewsArticle) and isinstance(second, NewsArticle)
    assert first.id == second.id == NewsArticle.make_id("https://e.com/x", "e.com", "T")


def test_datetime_naive_is_utc_and_offsets_converted(tmp_path: Path) -> None:
    a = json.dumps({"id": "a", "title": "T", "published": "2025-06-10T09:30:00"})
    b = json.dumps({"id": "b", "title": "T", "published": "2025-06-10T11:30:00+02:00"})
    first, second = list(read_jsonl(_write(tmp_path, a, b)))
    assert isinstance(first, NewsArticle) and isinstance(second, NewsArticle)
    assert first.published == second.published == datetime(2025, 6, 10, 9, 30, tzinfo=UTC)


def test_source_field_wins_and_html_text_is_stripped(tmp_path: Path) -> None:
    line = json.dumps(
        {
            "id": "a",
            "title": "T",
            "text": "<p>One</p><p>Two</p>",
            "source": "Wire",
            "source_url": "https://e.com/x",
        }
    )
    [article] = list(read_jsonl(_write(tmp_path, line)))
    assert isinstance(article, NewsArticle)
    assert article.source == "Wire"
    assert article.text == "One\nTwo"


def test_bad_lines_name_file_line_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        json.dumps({"id": "ok", "title": "fine"}),
        "{broken",
        "",
        json.dumps({"id": "x", "title": ""}),
        json.dumps({"id": "y", "title": "T", "published": "last tuesday"}),
        json.dumps(["not", "an", "object"]),
    )
    items = list(read_jsonl(path))
    assert isinstance(items[0], NewsArticle)
    bad = [i for i in items if isinstance(i, Bad)]
    assert [b.where for b in bad] == [f"{path}:2", f"{path}:4", f"{path}:5", f"{path}:6"]
    assert bad[0].kind == "bad JSON"
    assert "field 'title'" in bad[1].detail
    assert "field 'published'" in bad[2].detail
    assert bad[1].payload.startswith("{")


def test_bundled_sample_parses_cleanly_with_unique_ids() -> None:
    sample = Path(str(resources.files("cpwatch") / "data" / "sample_news.jsonl"))
    items = list(read_jsonl(sample))
    assert len(items) >= 30
    assert not [i for i in items if isinstance(i, Bad)]
    ids = [i.id for i in items if isinstance(i, NewsArticle)]
    assert len(set(ids)) == len(ids)
