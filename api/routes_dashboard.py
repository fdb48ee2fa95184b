"""The web dashboard: ``/`` and its static files, plus the read-only JSON it draws from.

``GET /api/events/stream`` (server-sent events: the latest published policy events, then new
ones polled from the events alias every ``POLL_S`` by ``ingested_at`` by one poller shared by
every stream (``api/sse.py``), with a heartbeat),
``GET /api/holders``, ``GET /api/holders/{id}/series`` (valuations, level rules and the policy
events linked to the holder), ``GET /api/rules``, ``GET /api/dashboard/alerts`` (firing =
``streams.alerts.firing``, the same count as ``cpwatch_alerts_firing``) and
``GET /api/dashboard/health`` (the worker's Prometheus ``/metrics`` on
``settings.metrics_port``, or ``"unknown"``).
Settings come from ``api.routes_subscriptions.subscription_settings`` (tests override it).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
from elasticsearch import ApiError, Elasticsearch, TransportError
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, StreamingResponse

from api.routes_subscriptions import EsDep, SettingsDep
from api.sse import Cursor, EventHub, Listener, TooManyClients
from cpwatch import metrics
from cpwatch.exceptions import ConfigError
from cpwatch.records import utcnow
from cpwatch.settings import Settings
from streams.alerts import firing, measure
from streams.rules import load_rules

router = APIRouter(tags=["dashboard"])
STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}

POLL_S = 1.0  # events poll interval (one poll per process, api/sse.py)
RETRY_SSE_S = 30  # Retry-After of a 429 when every event-stream slot is taken
HEARTBEAT_S = 10.0  # an SSE heartbeat at least this often
STREAM_MAX_S = 3600.0  # a stream ends after an hour; EventSource reconnects with Last-Event-ID
BACKLOG = 20  # events sent when a stream starts
BATCH = 100  # events per poll, at most
MAX_POINTS = 5_000
MAX_MARKERS = 200  # linked policy events drawn on one holder's chart
METRICS_TIMEOUT_S = 1.0
ES_TIMEOUT_S = 5.0


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> FileResponse:
    if name not in STATIC_FILES:  # a fixed list: no path from the request reaches the disk
        raise HTTPException(404, "not found")
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name])


# ------------------------------------------------------------------ live events (SSE)


def _new_events(
    es: Elasticsearch, settings: Settings, since: str | None, skip: set[str]
) -> list[dict[str, Any]]:
    """Events ingested at or after ``since``, minus ids in ``skip``; without ``since``, the
    ``BACKLOG`` latest by publication. Either way in ingestion order, which the stream's
    ``since`` cursor follows (the page orders its feed by publication)."""
    query: dict[str, Any] = {"range": {"ingested_at": {"gte": since}}} if since else {}
    newest: dict[str, Any] = {"published": {"order": "desc", "missing": "_last"}}
    order = {"ingested_at": "asc"} if since else newest
    resp = es.options(request_timeout=ES_TIMEOUT_S).search(
        index=settings.index("events"),
        size=BATCH if since else BACKLOG,
        sort=[order, {"id": "asc"}],
        query=query or {"match_all": {}},
        source_excludes=["text", "evidence"],
        ignore_unavailable=True,
        allow_no_indices=True,
    )
    docs = [h["_source"] for h in resp.get("hits", {}).get("hits", [])]
    if not since:
        docs.sort(key=lambda d: (d.get("ingested_at") or "", d.get("id") or ""))
    return [d for d in docs if d.get("id") not in skip and d.get("ingested_at")]


def _sse(event: str, data: Any, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _hub(request: Request, es: Elasticsearch, settings: Settings) -> EventHub:
    """The process's poller for these events (one per index and event loop: tests run
    several apps and loops in one process)."""
    hubs: dict[tuple[int, str], EventHub] = request.app.state.__dict__.setdefault("sse_hubs", {})
    key = (id(asyncio.get_running_loop()), settings.index("events"))
    if key not in hubs:
        fetch = functools.partial(_new_events, es, settings)
        hubs[key] = EventHub(fetch, period=POLL_S, max_clients=settings.api_max_sse_clients)
    return hubs[key]


async def _event_stream(
    request: Request, hub: EventHub, listener: Listener, since: str | None
) -> AsyncIterator[str]:
    try:
        yield "retry: 2000\n\n"
        cursor = Cursor(since)
        try:  # this stream's own start (backlog or catch-up); the shared feed follows
            first = await asyncio.to_thread(hub.fetch, since, set())
        except (ApiError, TransportError) as exc:
            yield _sse("problem", {"detail": f"elasticsearch: {exc.__class__.__name__}"})
            first = []
        for doc in first:
            if cursor.admit(doc):
                yield _sse("policy-event", doc, event_id=cursor.since)
        if cursor.since is None:
            cursor.since = utcnow().isoformat()  # empty index: only what comes from now on
        started = last_beat = time.monotonic()
        while time.monotonic() - started < STREAM_MAX_S:
            if await request.is_disconnected():
                return
            item = await listener.next(timeout=POLL_S)
            if item is not None and item[0] == "overflow":
                yield _sse("problem", {"detail": "too slow; reconnect to catch up"})
                return
            if item is not None and item[0] == "problem":
                yield _sse("problem", {"detail": item[1]})
            sent = item is not None and item[0] == "doc" and cursor.admit(item[1])
            if sent and item is not None:
                yield _sse("policy-event", item[1], event_id=cursor.since)
            if sent or time.monotonic() - last_beat >= HEARTBEAT_S:
                last_beat = time.monotonic()
                yield _sse("heartbeat", {"ts": utcnow().isoformat()})
    finally:
        hub.unsubscribe(listener)


@router.get("/api/events/stream")
async def events_stream(request: Request, settings: SettingsDep, es: EsDep) -> StreamingResponse:
    """Server-sent events: the latest events, then each new one as it is indexed. One poller
    serves every stream of the process; past ``CPWATCH_API_MAX_SSE_CLIENTS`` streams, 429."""
    hub = _hub(request, es, settings)
    try:
        listener = hub.subscribe()
    except TooManyClients as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(RETRY_SSE_S)}) from None
    since = request.headers.get("last-event-id") or None
    return StreamingResponse(
        _event_stream(request, hub, listener, since),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# ------------------------------------------------------------------ treasury


def _search(es: Elasticsearch, index: str, **body: Any) -> dict[str, Any]:
    try:
        return (
            es.options(request_timeout=ES_TIMEOUT_S)
            .search(index=index, ignore_unavailable=True, allow_no_indices=True, **body)
            .body
        )
    except (ApiError, TransportError) as exc:
        raise HTTPException(503, f"elasticsearch: {exc}") from exc


@router.get("/api/holders")
def holders(settings: SettingsDep, es: EsDep) -> dict[str, Any]:
    """Every holder with a valuation, with its latest one, largest first."""
    resp = _search(
        es,
        settings.index("treasury-valuations"),
        size=0,
        aggs={
            "holders": {
                "terms": {"field": "holder", "size": 500},
                "aggs": {"latest": {"top_hits": {"size": 1, "sort": [{"ts": "desc"}]}}},
            }
        },
    )
    out = []
    for bucket in resp.get("aggregations", {}).get("holders", {}).get("buckets", []):
        latest = bucket["latest"]["hits"]["hits"][0]["_source"]
        out.append({**latest, "points": bucket["doc_count"]})
    out.sort(key=lambda h: -float(h.get("value_usd") or 0))
    return {"holders": out}


def _rules(settings: Settings) -> list[dict[str, Any]]:
    try:
        return [r.model_dump(mode="json") for r in load_rules(settings.rules_path)]
    except ConfigError as exc:
        raise HTTPException(503, str(exc)) from exc


@router.get("/api/rules")
def rules(settings: SettingsDep) -> dict[str, Any]:
    """The treasury rules the worker applies (``CPWATCH_RULES_FILE`` or the packaged file)."""
    return {"file": str(settings.rules_path), "rules": _rules(settings)}


@router.get("/api/holders/{holder}/series")
def holder_series(
    settings: SettingsDep,
    es: EsDep,
    holder: str,
    size: Annotated[int, Query(ge=1, le=MAX_POINTS)] = 1_000,
) -> dict[str, Any]:
    """The holder's latest ``size`` valuations (oldest first) and its level-rule thresholds."""
    resp = _search(
        es,
        settings.index("treasury-valuations"),
        size=size,
        sort=[{"ts": "desc"}],
        query={"term": {"holder": holder}},
        source_includes=["ts", "value_usd", "price", "btc"],
    )
    points = [h["_source"] for h in resp.get("hits", {}).get("hits", [])][::-1]
    levels = [
        {k: r[k] for k in ("id", "threshold_usd", "direction", "hysteresis")}
        for r in _rules(settings)
        if r["type"] == "level" and r["holder"] in ("*", holder)
    ]
    events: list[dict[str, Any]] = []
    if points:  # the policy events linked to this holder (streams/holder_links) in the range
        span = {"gte": points[0]["ts"], "lte": points[-1]["ts"]}
        linked = _search(
            es,
            settings.index("events"),
            size=MAX_MARKERS,
            sort=[{"published": "asc"}],
            query={
                "bool": {"filter": [{"term": {"holders": holder}}, {"range": {"published": span}}]}
            },
            source_includes=["id", "title", "published", "categories", "countries"],
        )
        events = [h["_source"] for h in linked.get("hits", {}).get("hits", [])]
    return {"holder": holder, "points": points, "levels": levels, "events": events}


def firing_alerts(es: Elasticsearch, settings: Settings) -> list[dict[str, Any]]:
    """``streams.alerts.firing`` over the latest alert of every (rule, holder) in the index,
    not only recent ones. The dashboard's list and the API's ``cpwatch_alerts_firing``."""
    resp = _search(
        es,
        settings.index("alerts"),
        size=0,
        aggs={
            "holder": {
                "terms": {"field": "holder", "size": 1_000},
                "aggs": {
                    "rule": {
                        "terms": {"field": "rule", "size": 200},
                        "aggs": {"latest": {"top_hits": {"size": 1, "sort": [{"ts": "desc"}]}}},
                    }
                },
            }
        },
    )
    latest = [
        rule["latest"]["hits"]["hits"][0]["_source"]
        for holder in resp.get("aggregations", {}).get("holder", {}).get("buckets", [])
        for rule in holder["rule"]["buckets"]
    ]
    return [dict(a) for a in firing(latest)]


def _presented(alerts: list[dict[str, Any]], types: dict[str, str]) -> list[dict[str, Any]]:
    """Each alert with its rule type and what its threshold is compared with (price or value)."""
    out = []
    for a in alerts:
        rule_type = types.get(str(a.get("rule")))
        # acked_by names a token (older alerts: a prefix of its hash): not for an open page.
        shown = {k: v for k, v in a.items() if k != "acked_by"}
        out.append({**shown, "rule_type": rule_type, "measure": measure(rule_type)})
    return out


@router.get("/api/dashboard/alerts")
def dashboard_alerts(
    settings: SettingsDep, es: EsDep, size: Annotated[int, Query(ge=1, le=1_000)] = 50
) -> dict[str, Any]:
    """The ``size`` latest alerts, and those firing (``firing_alerts``)."""
    resp = _search(es, settings.index("alerts"), size=size, sort=[{"ts": "desc"}])
    recent = [h["_source"] for h in resp.get("hits", {}).get("hits", [])]
    try:
        types = {r["id"]: r["type"] for r in _rules(settings)}
    except HTTPException:
        types = {}  # an unreadable rules file: alerts still show, compared by value
    return {
        "firing": _presented(firing_alerts(es, settings), types),
        "recent": _presented(recent, types),
    }


# ------------------------------------------------------------------ pipeline health

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_RECORDS = {  # cpwatch/metrics.py counters → key in the summary
    "cpwatch_records_in_total": "in",
    "cpwatch_records_out_total": "out",
    "cpwatch_records_failed_total": "failed",
}
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of the Prometheus text format: (name, labels, value); comments skipped."""
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or line.startswith("#"):
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), value))
    return out


def summarize(samples: list[tuple[str, dict[str, str], float]]) -> dict[str, Any]:
    """Consumer lag per topic (Faust changelogs left out: restore-only topics whose consumed
    position Faust never commits, so their "lag" is whatever the tables wrote), and records
    in/out/failed per stage."""
    lag: dict[str, float] = {}
    records: dict[str, dict[str, float]] = {}
    for name, labels, value in samples:
        if math.isnan(value):
            continue
        if name == "cpwatch_consumer_lag":
            topic = labels.get("topic", "?")
            if topic != "changelog":
                lag[topic] = lag.get(topic, 0.0) + value
        elif name in _RECORDS:
            per_stage = records.setdefault(labels.get("stage", "?"), {})
            per_stage[_RECORDS[name]] = per_stage.get(_RECORDS[name], 0.0) + value
    return {"lag": lag, "records": records}


def firing_count(es: Elasticsearch, settings: Settings) -> int | None:
    """How many alerts fire (``firing_alerts``), also set on ``cpwatch_alerts_firing``;
    None when Elasticsearch does not answer."""
    try:
        n = len(firing_alerts(es, settings))
    except HTTPException:
        return None
    metrics.ALERTS_FIRING.set(n)
    return n


@router.get("/api/dashboard/health")
async def health(settings: SettingsDep, es: EsDep) -> dict[str, Any]:
    """The worker's metrics, summarized, and the alerts firing; rates are left to the client
    (deltas between polls)."""
    firing_now = await asyncio.to_thread(firing_count, es, settings)
    url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    try:
        async with httpx.AsyncClient(timeout=METRICS_TIMEOUT_S) as client:
            resp = await client.get(url)
            resp.raise_for_status()
    except httpx.HTTPError as exc:
        detail = exc.__class__.__name__
        return {"status": "unknown", "source": url, "detail": detail, "alerts_firing": firing_now}
    return {
        "status": "ok",
        "source": url,
        "ts": time.time(),
        **summarize(parse_metrics(resp.text)),
        "alerts_firing": firing_now,
    }
