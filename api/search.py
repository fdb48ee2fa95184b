"""Full-text search: validate user input, build the Elasticsearch request, shape the answer.

Pure functions only (no I/O): ``api/search_service.py`` sends the request, the API route and the
``cpwatch search`` command share both ends. The query language itself (parser, rendering,
refusals) is ``cpwatch.query``, shared with subscriptions; its names are re-exported here.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from cpwatch.query import (  # noqa: F401 - re-exported: the search API's query language
    CONTROL_CHARS,
    MAX_PREFIX_TERMS,
    MAX_QUERY_CHARS,
    MAX_QUERY_TERMS,
    MIN_PREFIX_CHARS,
    QUERY_FLAGS,
    And,
    Node,
    Not,
    Or,
    Phrase,
    QueryError,
    Term,
    parse_query,
    to_simple_query_string,
)
from cpwatch.query import check_query as _check_query

MAX_FILTER_VALUES = 20
MAX_FILTER_CHARS = 100
MAX_SIZE = 100
DEFAULT_SIZE = 20
FACET_SIZE = 20
MAX_CURSOR_CHARS = 1024
SEARCH_TIMEOUT = "5s"  # server side: a slow shard answers partially instead of hanging

Cursor = list[Any]
Facets = dict[str, list[list[Any]]]


@dataclass(frozen=True)
class IndexSpec:
    """How one logical index is searched, filtered, sorted and faceted."""

    fields: tuple[str, ...]
    date_field: str
    id_field: str
    filters: dict[str, str]  # parameter -> keyword field
    facets: dict[str, str]  # facet name -> keyword field
    highlight: tuple[str, ...]
    source: tuple[str, ...]


_TEXT_SPEC = IndexSpec(
    fields=("title^3", "text", "evidence"),
    date_field="published",
    id_field="id",
    filters={"category": "categories", "country": "countries", "org": "orgs"},
    facets={
        "categories": "categories",
        "countries": "countries",
        "orgs": "orgs",
        "sources": "source",
    },
    highlight=("title", "text"),
    source=("id", "title", "categories", "countries", "orgs", "source", "published"),
)

INDEXES: dict[str, IndexSpec] = {
    "events": _TEXT_SPEC,
    "articles": _TEXT_SPEC,
    # Alerts have only keyword fields: the query matches rule/holder/direction names exactly.
    "alerts": IndexSpec(
        fields=("rule^2", "holder^2", "direction"),
        date_field="ts",
        id_field="fingerprint",
        filters={},
        facets={"rules": "rule", "holders": "holder", "directions": "direction"},
        highlight=(),
        source=("fingerprint", "rule", "holder", "direction", "ts", "value_usd", "threshold_usd"),
    ),
}


@dataclass(frozen=True)
class SearchParams:
    """Validated search input; build it with ``parse_params``."""

    q: str = ""  # as the user typed it (trimmed)
    expr: str = ""  # its simple_query_string form (parse_query + to_simple_query_string)
    index: str = "events"
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)  # param -> values
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    size: int = DEFAULT_SIZE
    after: Cursor | None = None

    @property
    def spec(self) -> IndexSpec:
        return INDEXES[self.index]


def _check_values(param: str, values: Iterable[str] | None) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(v.strip() for v in values or () if v.strip()))
    if len(out) > MAX_FILTER_VALUES:
        raise QueryError(param, f"more than {MAX_FILTER_VALUES} values")
    for v in out:
        if len(v) > MAX_FILTER_CHARS or CONTROL_CHARS.search(v):
            raise QueryError(param, f"value {v[:40]!r} is too long or has control characters")
    return out


def _check_country(value: str) -> str:
    """An ISO 3166-1 alpha-2 code the classifier can tag (any case); else a 400 with a hint."""
    from streams.gazetteer import PLACES

    code = value.upper()
    if code in PLACES:
        return code
    hint = ""
    for iso, names in PLACES.items():
        if value.casefold() in (n.casefold() for n in names.split("|")):
            hint = f" (did you mean {iso}?)"
            break
    raise QueryError("country", f"{value[:40]!r} is not a known ISO 3166-1 alpha-2 code{hint}")


def parse_when(param: str, raw: str | None, *, end: bool = False) -> datetime | None:
    """ISO date or datetime (naive = UTC). A bare date as an ``end`` bound covers the whole day."""
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            return datetime.combine(d + timedelta(days=1 if end else 0), time(), UTC)
        dt = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise QueryError(param, f"{raw!r} is not an ISO date (YYYY-MM-DD) or datetime") from exc
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def encode_cursor(sort_values: Sequence[Any]) -> str:
    """Opaque ``next`` token: URL-safe base64 of the last hit's sort values."""
    raw = json.dumps(list(sort_values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    bad = QueryError("after", "not a cursor returned as `next` by a previous search")
    if len(token) > MAX_CURSOR_CHARS:
        raise bad
    try:
        values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise bad from exc
    # Exactly [score, date millis, id]; anything else did not come from us.
    if not (isinstance(values, list) and len(values) == 3):
        raise bad
    score, when, ident = values
    if not _is_number(score) or not (isinstance(when, int) and not isinstance(when, bool)):
        raise bad
    if not -(2**63) <= when < 2**63:  # a Java long, or Elasticsearch answers 400 on `q`
        raise bad
    if ident is not None and not isinstance(ident, str):
        raise bad
    return values


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def parse_params(
    q: str | None = "",
    *,
    index: str | None = "events",
    category: Iterable[str] | None = None,
    country: Iterable[str] | None = None,
    org: Iterable[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    size: int | None = DEFAULT_SIZE,
    after: str | None = None,
) -> SearchParams:
    """Validate raw user input (strings from a URL or a command line) into ``SearchParams``."""
    index = (index or "events").strip()
    if index not in INDEXES:
        raise QueryError("index", f"must be one of {', '.join(INDEXES)}, not {index!r}")
    spec = INDEXES[index]
    size = DEFAULT_SIZE if size is None else size
    if not 1 <= size <= MAX_SIZE:
        raise QueryError("size", f"must be between 1 and {MAX_SIZE}, not {size}")
    filters: dict[str, tuple[str, ...]] = {}
    for param, values in (("category", category), ("country", country), ("org", org)):
        checked = _check_values(param, values)
        if checked and param not in spec.filters:
            raise QueryError(param, f"filter not available for index {index}")
        if checked and param == "country":
            checked = tuple(_check_country(v) for v in checked)
        if checked:
            filters[param] = checked
    start, end = parse_when("since", since), parse_when("until", until, end=True)
    if start and end and start >= end:
        raise QueryError("until", "must be after since")
    query, rendered = _check_query(q or "")
    return SearchParams(
        q=query,
        expr=rendered,
        index=index,
        filters=filters,
        since=start,
        until=end,
        size=size,
        after=decode_cursor(after) if after else None,
    )


def build_request(p: SearchParams) -> dict[str, Any]:
    """The ``_search`` body: scored query in ``must``, exact filters in ``filter`` (cached)."""
    spec = p.spec
    must: dict[str, Any] = (
        {
            "simple_query_string": {
                "query": p.expr,
                "fields": list(spec.fields),
                "default_operator": "and",
                "flags": QUERY_FLAGS,
                "lenient": False,
                "analyze_wildcard": False,
            }
        }
        if p.expr
        else {"match_all": {}}
    )
    filters: list[dict[str, Any]] = [
        {"terms": {spec.filters[param]: list(values)}} for param, values in p.filters.items()
    ]
    if p.since or p.until:
        bounds: dict[str, str] = {}
        if p.since:
            bounds["gte"] = p.since.isoformat()
        if p.until:
            bounds["lt"] = p.until.isoformat()
        filters.append({"range": {spec.date_field: bounds}})
    aggs: dict[str, Any] = {
        name: {"terms": {"field": fld, "size": FACET_SIZE}} for name, fld in spec.facets.items()
    }
    aggs["published"] = {
        "date_histogram": {
            "field": spec.date_field,
            "calendar_interval": "month",
            "format": "yyyy-MM",
            "min_doc_count": 1,
        }
    }
    body: dict[str, Any] = {
        "query": {"bool": {"must": [must], "filter": filters}},
        # Score first; date then a unique keyword make the order total, so search_after pages
        # neither skip nor repeat hits (and go past the 10,000 from+size window).
        "sort": [
            {"_score": {"order": "desc"}},
            {spec.date_field: {"order": "desc", "missing": "_last", "unmapped_type": "date"}},
            {spec.id_field: {"order": "asc", "unmapped_type": "keyword"}},
        ],
        "size": p.size + 1,  # one extra tells whether a next page exists
        "track_total_hits": True,
        "timeout": SEARCH_TIMEOUT,
        "_source": list(spec.source),
        "aggs": aggs,
    }
    if spec.highlight:
        body["highlight"] = {
            "encoder": "html",  # snippets are safe to render as HTML; only <em> is markup
            "pre_tags": ["<em>"],
            "post_tags": ["</em>"],
            "fields": {
                "title": {"number_of_fragments": 0},
                "text": {"fragment_size": 160, "number_of_fragments": 3},
            },
        }
    if p.after is not None:
        body["search_after"] = p.after
    return body


def _hit(index: str, h: dict[str, Any]) -> dict[str, Any]:
    src = h.get("_source") or {}
    if index == "alerts":
        return {
            "id": src.get("fingerprint") or h["_id"],
            "index": index,
            "title": " ".join(str(src.get(k, "")) for k in ("rule", "direction", "holder")).strip(),
            "categories": [],
            "countries": [],
            "published": src.get("ts"),
            "score": h.get("_score"),
            "highlight": {},
        }
    return {
        "id": src.get("id") or h["_id"],
        "index": index,
        "title": src.get("title", ""),
        "categories": _as_list(src.get("categories")),
        "countries": _as_list(src.get("countries")),
        "published": src.get("published"),
        "score": h.get("_score"),
        "highlight": h.get("highlight", {}),
        "source": src.get("source"),
    }


def _as_list(v: object) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, list) else [v]


def shape_response(p: SearchParams, resp: dict[str, Any]) -> dict[str, Any]:
    """The public contract: total, hits, facets ([[key, count], ...]) and the ``next`` cursor."""
    raw_hits = resp.get("hits", {}).get("hits", [])
    page = raw_hits[: p.size]
    more = len(raw_hits) > p.size
    facets: Facets = {}
    for name, agg in (resp.get("aggregations") or {}).items():
        facets[name] = [
            [b.get("key_as_string", b["key"]), b["doc_count"]] for b in agg.get("buckets", [])
        ]
    total = resp.get("hits", {}).get("total", {})
    return {
        "total": total.get("value", 0) if isinstance(total, dict) else int(total),
        "hits": [_hit(p.index, h) for h in page],
        "facets": facets,
        "next": encode_cursor(page[-1]["sort"]) if more and page else None,
        "timed_out": bool(resp.get("timed_out", False)),
    }


def split_highlight(snippet: str) -> list[tuple[str, bool]]:
    """``a <em>b</em> c`` -> [("a ", False), ("b", True), (" c", False)], HTML entities decoded."""
    parts: list[tuple[str, bool]] = []
    for i, chunk in enumerate(re.split(r"</?em>", snippet)):
        if chunk:
            parts.append((html.unescape(chunk), i % 2 == 1))
    return parts
