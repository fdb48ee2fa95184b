"""Prometheus metrics of every cpwatch process: one set of names (``cpwatch_*``), bounded labels.

Each process serves its own ``/metrics``: the worker on ``settings.metrics_port`` (9308), each
producer command on ``settings.producer_metrics_port`` plus a fixed offset per kind (news
9309, prices 9311, holdings 9312; see ``PRODUCER_PORT_OFFSET``), the API on its own HTTP port
at ``/metrics``. Port 0 disables a server; a port already taken is a warning, never fatal.

Labels are bounded: ``topic`` is the logical topic name (no prefix), ``index`` the logical
index name, and the open-ended ones (``holder``, ``venue``, ``symbol``) keep their first
``*_CAP`` values and fold the rest into ``"other"``. Nothing here does I/O at import time.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cpwatch import topics as t
from cpwatch.internal_topics import INTERNAL

log = logging.getLogger(__name__)

OTHER = "other"
HOLDER_CAP = 200
VENUE_CAP = 50
SYMBOL_CAP = 50
PRODUCER_PORT_OFFSET = {"news": 0, "prices": 2, "holdings": 3}  # 9310 was the API's, kept free

_LATENCY = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_E2E = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

RECORDS_IN = Counter("cpwatch_records_in_total", "Records consumed by a stage.", ["stage", "topic"])
RECORDS_OUT = Counter(
    "cpwatch_records_out_total",
    "Records a stage sent to a topic (producers: queued) or indexed (topic = index).",
    ["stage", "topic"],
)
RECORDS_FAILED = Counter(
    "cpwatch_records_failed_total",
    "Records a stage could not process or deliver (every dead-lettered one included).",
    ["stage", "topic"],
)
DEAD_LETTERED = Counter(
    "cpwatch_records_dead_lettered_total",
    "Records sent to dead-letter, by the stage that gave up and the topic they came from.",
    ["stage", "topic"],
)
CONSUMER_LAG = Gauge(
    "cpwatch_consumer_lag",
    "Records behind the log end per assigned partition (highwater - committed offset).",
    ["topic", "partition"],
)
PROCESSING = Histogram(
    "cpwatch_processing_seconds",
    "Time one unit of work took in a stage (an event, or a batch in batched stages).",
    ["stage"],
    buckets=_LATENCY,
)
END_TO_END = Histogram(
    "cpwatch_end_to_end_seconds",
    "Event time (fetched_at / ts) to indexed or delivered; historic replays land in +Inf.",
    ["stage"],
    buckets=_E2E,
)
ES_BULK = Histogram(
    "cpwatch_es_bulk_seconds",
    "Duration of one BulkWriter.write (retries included) per logical index.",
    ["index"],
    buckets=_LATENCY,
)
ES_BULK_ERRORS = Counter(
    "cpwatch_es_bulk_errors_total",
    "Elasticsearch bulk problems: rejected documents, retried documents, unavailable cluster.",
    ["index", "kind"],
)
DELIVERY_ATTEMPT = Histogram(
    "cpwatch_delivery_attempt_seconds",
    "Latency of one webhook / Slack / email delivery attempt.",
    ["channel"],
    buckets=_LATENCY,
)
DELIVERY_ATTEMPTS = Counter(
    "cpwatch_delivery_attempts_total",
    "Delivery attempts by outcome (ok, error).",
    ["channel", "outcome"],
)
DELIVERIES = Counter(
    "cpwatch_deliveries_total",
    "Finished deliveries by outcome (delivered, dead).",
    ["channel", "outcome"],
)
REFERENCE_PRICE = Gauge(
    "cpwatch_reference_price_usd", "Latest reference price per symbol.", ["symbol"]
)
TREASURY_VALUE = Gauge(
    "cpwatch_treasury_value_usd",
    f"Latest valuation per holder; holders past the first {HOLDER_CAP} are summed as 'other'.",
    ["holder"],
)
# Set by the API only (api/routes_metrics.py), from the alerts index with the dashboard's own
# rule (streams.alerts.firing): one number, acks included, never summed over workers.
ALERTS_FIRING = Gauge(
    "cpwatch_alerts_firing", "Alerts firing: latest crossing per rule and holder, not acked."
)
INPUT_REFILLS = Counter(
    "cpwatch_input_refilled_total",
    "Input messages the consumer skipped, read again from the broker before going on.",
    ["stage"],
)
BATCH_RETRIES = Counter(
    "cpwatch_batch_retries_total",
    "Batches of a stateful stage handled again from the saved state after failing part-way.",
    ["stage"],
)
VENUE_EVENTS = Counter(
    "cpwatch_venue_events_total",
    "Venue status changes against the reference price (stale, diverging, recovered).",
    ["symbol", "venue", "kind"],
)
PRICES_LOST = Counter(
    "cpwatch_holder_prices_lost_total",
    "Reference prices a holder slot never received (a jump in their numbers): never expected.",
    ["slot"],
)
HOLDINGS_LATE = Counter(
    "cpwatch_holdings_late_total",
    "Holdings rows that arrived after a price at or past their as_of was evaluated.",
)
HOLDINGS_LOADED = Gauge(
    "cpwatch_holdings_rows", "Holdings rows the treasury stage has read from the holdings topic."
)
GC_FROZEN = Gauge(
    "cpwatch_gc_frozen_objects",
    "Start-up objects the worker moved out of the garbage collector's full passes.",
)


class CappedLabel:
    """The first ``cap`` distinct values pass through; later ones become ``"other"``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.cap:
                self._seen.add(value)
                return value
        return OTHER


holder_label, venue_label, symbol_label = (
    CappedLabel(HOLDER_CAP),
    CappedLabel(VENUE_CAP),
    CappedLabel(SYMBOL_CAP),
)

_KNOWN_TOPICS = tuple(sorted((*(s.name for s in t.TOPICS), *INTERNAL), key=len, reverse=True))
_INDICES = (
    "treasury-valuations",
    "delivery-attempts",
    "subscriptions",
    "articles",
    "events",
    "alerts",
    "match-scratch",
)
_INDEX_RE = re.compile("-(" + "|".join(_INDICES) + r")(-v\d+)?(-\d{4}\.\d{2})?$")


def logical_topic(full: str | None) -> str:
    """``t-x-news`` → ``news``; Faust changelogs → ``changelog``; anything else → ``other``."""
    if not full:
        return "none"
    if full.endswith("-changelog"):
        return "changelog"
    for name in _KNOWN_TOPICS:
        if full == name or full.endswith("-" + name):
            return name
    return OTHER


def logical_index(full: str) -> str:
    """``cpwatch-treasury-valuations-v1-2025.03`` → ``treasury-valuations``."""
    m = _INDEX_RE.search(full)
    return m.group(1) if m else OTHER


def count_in(stage: str, topic: str, n: int = 1) -> None:
    RECORDS_IN.labels(stage, topic).inc(n)


def count_out(stage: str, topic: str, n: int = 1) -> None:
    RECORDS_OUT.labels(stage, topic).inc(n)


def count_failed(stage: str, topic: str, n: int = 1) -> None:
    RECORDS_FAILED.labels(stage, topic).inc(n)


def count_dead_lettered(stage: str, topic: str | None) -> None:
    """One record given up on: counted as failed and as dead-lettered (``topic``: full name)."""
    name = logical_topic(topic)
    RECORDS_FAILED.labels(stage, name).inc()
    DEAD_LETTERED.labels(stage, name).inc()


def count_venue_event(symbol: str, venue: str, kind: str) -> None:
    VENUE_EVENTS.labels(symbol_label(symbol), venue_label(venue), kind).inc()


def observe_end_to_end(stage: str, event_time: str | None, now: float | None = None) -> None:
    """Record ``now - event_time`` for an ISO timestamp; an unusable one is ignored."""
    if not event_time:
        return
    try:
        then = datetime.fromisoformat(event_time).timestamp()
    except (TypeError, ValueError):
        return
    END_TO_END.labels(stage).observe(max(0.0, (now or time.time()) - then))


_last_tick: dict[str, float] = {}
_other_values: dict[str, float] = {}


def tick_seen(venue: str) -> None:
    """A tick from ``venue`` reached the worker now (wall clock: replays are not 'stale')."""
    _last_tick[venue_label(venue)] = time.time()


def set_reference_price(symbol: str, price: float) -> None:
    REFERENCE_PRICE.labels(symbol_label(symbol)).set(price)


def set_treasury_value(holder: str, value_usd: float) -> None:
    label = holder_label(holder)
    if label != OTHER:
        TREASURY_VALUE.labels(label).set(value_usd)
        return
    _other_values[holder] = value_usd  # bounded by the holdings file, not by the stream
    TREASURY_VALUE.labels(OTHER).set(sum(_other_values.values()))


class _TickAge(Collector):
    """``cpwatch_last_tick_age_seconds{venue}``, computed at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily(
            "cpwatch_last_tick_age_seconds",
            "Seconds since the worker last received a price tick from the venue.",
            labels=["venue"],
        )
        now = time.time()
        for venue, at in list(_last_tick.items()):
            g.add_metric([venue], now - at)
        yield g


REGISTRY.register(_TickAge())


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> bool:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread. Port 0 disables it; a port
    already taken logs a warning and returns False (the process carries on without it)."""
    if port <= 0:
        return False
    try:
        start_http_server(port, addr=addr)
    except OSError as exc:
        log.warning(
            "metrics: cannot serve on %s:%d (%s); continuing without /metrics", addr, port, exc
        )
        return False
    log.info("metrics on http://%s:%d/metrics", addr, port)
    return True


def producer_metrics_port(base: int, kind: str) -> int:
    """The port of one producer command: ``base`` plus the kind's offset (0 stays 0)."""
    return base + PRODUCER_PORT_OFFSET.get(kind, 0) if base > 0 else 0
