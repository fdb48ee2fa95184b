"""Alert latency at a steady tick rate: tick produced → alert searchable in ES, and → webhook.

    .venv/bin/python -m bench.bench_latency [--seconds 60] [--rate 1000] [--holders 30]

One namespace (``bench-<uuid>-`` topics, ``bench-<uuid>`` indices), deleted after. A worker
subprocess runs on it with one level rule (threshold $1B, both directions, no hysteresis) and
one webhook subscription for level alerts (group_wait 0s, group_interval 0.1s) pointing at an
HTTP receiver on 127.0.0.1 (loopback allow-listed through ``delivery_ssrf_allowlist``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from pydantic import SecretStr

from bench.children import Children, TopicWatch, namespace
from cpwatch import topics
from cpwatch.namespace import drop_namespace
from cpwatch.records import HoldingUpdate, PriceTick
from cpwatch.settings import Settings
from cpwatch.topics import ensure_topics
from producers.kafka import Producer
from streams.alerts import Alert
from streams.backtest import PriceRow, run_backtest
from streams.rules import RuleEngine, load_rules

METHOD = (
    "price ticks (one venue, BTC-USD) produced with producers.kafka.Producer at a fixed rate in "
    "10 ms bursts, each stamped ts = time.time() at its send() call (so latency includes the "
    "producer's 20 ms linger). Price: one triangle wave P0 -> P1 -> P0 over the run; N holders "
    "whose BTC amounts put the rule's threshold at evenly spaced prices in the lower 80 % of "
    "the rise, so each crosses up once on the rise and down once on the fall (2N crossings, "
    "evenly spaced in time within the first and last 40 % of the run). Expected "
    "alerts = run_backtest over the produced ticks; the fingerprint maps each to its tick's send "
    "time. (a) ES: a thread runs _search on the alerts alias every 25 ms (no forced refresh, "
    "_ids not yet seen); seen time = the response's arrival. (b) webhook: arrival time of the "
    "POST carrying the alert's 'firing' item at a ThreadingHTTPServer on 127.0.0.1. Both sides "
    "time.time() on one machine. For attribution, a kafka-python consumer on the alerts topic "
    "(group-less, from the start) notes each alert's arrival there (alerts_topic = the "
    "treasury stage). A warm-up crossing (holder bench-warm) is awaited on both "
    "paths before the run and excluded. Alerts not seen within the settle timeout after the "
    "last tick are counted as missing; percentiles are over those seen."
)
THRESHOLD_USD = 1_000_000_000.0
P_LOW, P0, P1 = 90_000.0, 100_000.0, 110_000.0  # warm-up low, wave bottom, wave top
WARM = "bench-warm"  # crosses up at $95k: once, during warm-up, then stays above
SECONDS, RATE, HOLDERS = 60.0, 1_000, 30
POLL_S = 0.025
WARMUP_DEADLINE_S = 180.0
SETTLE_S = 30.0
GOAL_P99_S = 0.5


def holdings(n: int) -> list[HoldingUpdate]:
    """The warm-up holder, then n holders with thresholds at evenly spaced wave prices."""
    as_of = datetime.now(UTC) - timedelta(days=1)
    out = [HoldingUpdate(holder=WARM, kind="fund", btc=THRESHOLD_USD / 95_000, as_of=as_of)]
    for i in range(n):
        # Crossings spread over the lower 80 % of the rise: every holder then stays above for
        # at least a fifth of the run, long enough for a polling peer (bench_peer) to see it.
        level = P0 + (P1 - P0) * 0.8 * (i + 0.5) / n
        out.append(
            HoldingUpdate(
                holder=f"bench-{i:03d}", kind="company", btc=THRESHOLD_USD / level, as_of=as_of
            )
        )
    return out


def price_at(frac: float) -> float:
    """Triangle wave over the run: P0 at 0 and 1, P1 at 0.5."""
    up = frac * 2 if frac < 0.5 else 2 - frac * 2
    return round(P0 + (P1 - P0) * up, 2)


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    return xs[min(len(xs) - 1, max(0, math.ceil(p * len(xs)) - 1))]


def summary(latencies: list[float], expected: int) -> dict[str, Any]:
    xs = sorted(latencies)
    out: dict[str, Any] = {"expected": expected, "seen": len(xs), "missing": expected - len(xs)}
    if xs:
        for name, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            out[f"{name}_s"] = round(pct(xs, p), 3)
        out["max_s"], out["min_s"] = round(xs[-1], 3), round(xs[0], 3)
    return out


class Receiver:
    """HTTP server on 127.0.0.1 in a thread: records (path, arrival time, JSON body) per POST."""

    def __init__(self) -> None:
        self.got: list[tuple[str, float, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                with outer.lock:
                    outer.got.append((self.path, at, doc))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def hits(self, path: str) -> list[tuple[float, Any]]:
        with self.lock:
            return [(at, doc) for p, at, doc in self.got if p == path]

    def firing(self, path: str) -> dict[str, float]:
        """Alert fingerprint -> first arrival of its 'firing' item (digests count per item)."""
        out: dict[str, float] = {}
        for at, doc in self.hits(path):
            for item in (doc or {}).get("items", []):
                if item.get("kind") == "firing":
                    out.setdefault(item["alert"]["fingerprint"], at)
        return out


class EsWatch(threading.Thread):
    """Polls the alerts alias every POLL_S without forcing a refresh; first-seen time per _id."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        from elasticsearch import Elasticsearch

        self.es = Elasticsearch(**settings.es_client_kwargs())
        self.alias = settings.index("alerts")
        self.seen: dict[str, float] = {}
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                resp = self.es.search(
                    index=self.alias,
                    size=1000,
                    query={"bool": {"must_not": [{"ids": {"values": list(self.seen)}}]}},
                    source=False,
                    filter_path="hits.hits._id",
                )
                now = time.time()
                for hit in resp.get("hits", {}).get("hits", []):
                    self.seen.setdefault(hit["_id"], now)
            except Exception:  # noqa: BLE001 - count and keep polling; reported in the result
                self.errors += 1
            self.stop.wait(POLL_S)
        self.es.close()


class KafkaWatch(TopicWatch):
    """Arrival time per fingerprint on the alerts topic: splits the treasury stage from the
    sink and delivery stages downstream of it."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, topics.ALERTS)
        self.seen: dict[str, float] = {}

    def note(self, topic: str, doc: Any, now: float) -> None:
        self.seen.setdefault(doc["fingerprint"], now)


class Harness:
    """A namespace with a worker, a webhook subscription, an ES watch and a tick producer."""

    def __init__(self, tag: str, n_holders: int) -> None:
        self.token = secrets.token_hex(16)
        settings, self.tmp = namespace(f"bench-{tag}", api_tokens=SecretStr(self.token))
        rules = self.tmp / "rules.yaml"
        rule = {"id": "bench-level", "holder": "*", "type": "level", "threshold_usd": THRESHOLD_USD}
        rules.write_text(json.dumps({"rules": [rule]}))
        self.settings = settings.model_copy(update={"rules_file": rules})
        self.holdings = holdings(n_holders)
        self.ticks: list[PriceTick] = []
        self.sent_at: dict[datetime, float] = {}
        self.children = Children(self.settings, self.tmp)
        self.log_path = self.children.log_path("worker")
        self.receiver = Receiver()
        self.watch = EsWatch(self.settings)
        self.kafka_watch = KafkaWatch(self.settings)
        self.proc: subprocess.Popen[bytes] | None = None
        self.producer: Producer | None = None

    def __enter__(self) -> Harness:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)  # a half-made namespace is still dropped
            raise
        return self

    def _start(self) -> None:
        from elasticsearch import Elasticsearch

        from sinks.indices import ensure_indices

        ensure_topics(self.settings)
        es = Elasticsearch(**self.settings.es_client_kwargs())
        ensure_indices(es, self.settings)  # the subscription is stored before the worker starts
        es.close()
        self._subscribe()
        self.producer = Producer(self.settings, client_id="bench-latency")
        for h in self.holdings:
            self.producer.send(topics.HOLDINGS, h.key, h)
        self.producer.flush()
        self.proc = self.children.start("worker")
        self.watch.start()
        self.kafka_watch.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.watch.stop.set()
        self.kafka_watch.stop.set()
        self.receiver.server.shutdown()
        if self.producer is not None:
            self.producer.close(timeout=10)
        self.children.stop()
        self.cleanup_problems = drop_namespace(self.settings)
        self.worker_log_tail = self.children.log_tail("worker")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _subscribe(self) -> None:
        """Through the real API (SSRF guard included), as tests/integration does."""
        from fastapi.testclient import TestClient

        from api.routes_subscriptions import subscription_settings
        from api.server import create_app

        app = create_app()
        app.dependency_overrides[subscription_settings] = lambda: self.settings
        body = {
            "name": "bench level alerts",
            "channel": {
                "type": "webhook",
                "url": self.receiver.url("/hook"),
                "secret": secrets.token_hex(16),
            },
            "filters": {"rule_types": ["level"]},
            "group_wait": "0s",
            "group_interval": "0.1s",  # the digest timer runs every 0.2 s anyway
        }
        client = TestClient(app)
        resp = client.post(
            "/api/subscriptions", json=body, headers={"Authorization": f"Bearer {self.token}"}
        )
        client.close()
        if resp.status_code != 201:
            raise RuntimeError(f"subscription refused: {resp.status_code} {resp.text}")

    def _send(self, price: float) -> None:
        assert self.producer is not None
        now = time.time()
        ts = datetime.fromtimestamp(now, UTC)
        if self.ticks and ts <= self.ticks[-1].ts:  # event time must move forward
            ts = self.ticks[-1].ts + timedelta(microseconds=1)
        tick = PriceTick(venue="bench", symbol="BTC-USD", price=price, ts=ts, seq=len(self.ticks))
        self.producer.send(topics.PRICE_TICKS, tick.key, tick)
        self.ticks.append(tick)
        self.sent_at[ts] = now

    def warm_up(self, ready: Callable[[], bool] = lambda: True) -> float:
        """Fire the warm holder's crossing and wait until both paths (and ``ready``) saw it.
        Ticks alternate by a cent every 0.5 s so valuations keep flowing meanwhile."""
        t0 = time.time()
        self._send(P_LOW)
        k = 0
        while not (self.watch.seen and self.receiver.firing("/hook") and ready()):
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}: {self.log_path}")
            if time.time() - t0 > WARMUP_DEADLINE_S:
                raise RuntimeError(
                    f"warm-up alert not seen within {WARMUP_DEADLINE_S}s: "
                    f"es={bool(self.watch.seen)} webhook={bool(self.receiver.firing('/hook'))} "
                    f"other={ready()}"
                )
            self._send(P0 + 0.01 * (k % 2))
            k += 1
            time.sleep(0.5)
        return time.time() - t0

    def drive(self, seconds: float, rate: int) -> dict[str, Any]:
        """The wave at ``rate`` ticks/s in 10 ms bursts; returns the pacing actually achieved."""
        assert self.producer is not None
        burst = max(1, rate // 100)
        n = int(seconds * rate)
        start, slip = time.perf_counter(), 0.0
        first = len(self.ticks)
        for i in range(n):
            if i % burst == 0:
                due = start + i / rate
                late = time.perf_counter() - due
                if late < 0:
                    time.sleep(-late)
                slip = max(slip, late)
            self._send(price_at(i / n))
        self.producer.flush()
        span = self.sent_at[self.ticks[-1].ts] - self.sent_at[self.ticks[first].ts]
        return {
            "ticks": n,
            "ticks_per_s": round((n - 1) / span),
            "max_burst_late_s": round(slip, 3),
        }

    def expected(self) -> tuple[list[Alert], set[str]]:
        """What ``cpwatch backtest`` gives for every produced tick: (measured alerts, all
        fingerprints), the warm-up alert being the one not measured."""
        rows = [PriceRow(i, t.ts, t.price) for i, t in enumerate(self.ticks)]
        engine = RuleEngine(load_rules(self.settings.rules_path))
        alerts = list(run_backtest(rows, self.holdings, engine))
        return [a for a in alerts if a.holder != WARM], {a.fingerprint for a in alerts}

    def settle(self, done: Callable[[], bool], timeout: float = SETTLE_S) -> float:
        t0 = time.time()
        while not done() and time.time() - t0 < timeout:
            time.sleep(0.1)
        return time.time() - t0

    def latencies(self, alerts: list[Alert], seen: dict[str, float]) -> list[float]:
        return [seen[a.fingerprint] - self.sent_at[a.ts] for a in alerts if a.fingerprint in seen]


def run(seconds: float = SECONDS, rate: int = RATE, n_holders: int = HOLDERS) -> dict[str, Any]:
    result: dict[str, Any] = {
        "seconds": seconds,
        "rate": rate,
        "holders": n_holders,
        "method": METHOD,
    }
    load = os.getloadavg()[0]  # other work on this 2-core box shows up in every figure
    h = Harness("lat", n_holders)
    with h:
        result["prefix"] = h.settings.topic_prefix
        result["warm_up_s"] = round(h.warm_up(), 1)
        result["pacing"] = h.drive(seconds, rate)
        alerts, every = h.expected()
        fps = {a.fingerprint for a in alerts}
        h.settle(lambda: fps <= set(h.watch.seen) and fps <= set(h.receiver.firing("/hook")))
        es_seen, hook_seen = dict(h.watch.seen), h.receiver.firing("/hook")
        result["expected_alerts"] = len(alerts)
        result["alerts_topic"] = summary(h.latencies(alerts, h.kafka_watch.seen), len(alerts))
        result["es_searchable"] = summary(h.latencies(alerts, es_seen), len(alerts))
        result["webhook"] = summary(h.latencies(alerts, hook_seen), len(alerts))
        result["unexpected_alerts"] = {
            "es": len(set(es_seen) - every),
            "webhook": len(set(hook_seen) - every),
        }
        result["es_poll_errors"] = h.watch.errors
        result["goal_p99_s"] = GOAL_P99_S
        result["goal_met"] = {
            k: result[k].get("p99_s", math.inf) < GOAL_P99_S and result[k]["missing"] == 0
            for k in ("es_searchable", "webhook")
        }
    result["load_avg_1m"] = {"before": round(load, 2), "after": round(os.getloadavg()[0], 2)}
    result["cleanup_problems"] = h.cleanup_problems
    if any(not ok for ok in result["goal_met"].values()):
        result["worker_log_tail"] = h.worker_log_tail
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--rate", type=int, default=RATE, help="ticks per second")
    parser.add_argument("--holders", type=int, default=HOLDERS, help="2 crossings per holder")
    args = parser.parse_args()
    json.dump(run(args.seconds, args.rate, args.holders), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
