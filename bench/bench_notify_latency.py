"""Notification latency with many subscriptions: article POSTed → webhook received.

    .venv/bin/python -m bench.bench_notify_latency [--subscriptions 100000] [--articles 60]

One namespace (``bench-notify-<uuid>`` topics and indices), deleted after. ``--subscriptions``
synthetic subscriptions (``bench_percolation``'s: 2-3 words of a 5,000-word vocabulary, some
with country/category filters) are bulk-written straight to the subscriptions index, as a
migration would; their channel is a webhook on a local receiver (``/bg``). Then one
subscription per measured article is created through the API (``group_wait: 0s``), with the
query ``ruritania AND <nonce>``: each article matches exactly its own, so no digest interval of
an earlier article holds it. A real worker (``cpwatch worker``: classifier, story clusterer,
match and delivery agents) and a real API (uvicorn) run as subprocesses.

Each article is POSTed to ``/api/ingest/news`` one at a time, after the previous one arrived
and a pause (``--gap``), so each is its own batch at every stage. Latency = webhook arrival −
time before the POST (one clock). Its text carries words of the subscriptions' vocabulary, so
the candidate search does real work and background subscriptions match too (their deliveries
go to ``/bg``). A consumer on ``policy-events`` and ``deliveries`` splits the latency into
ingest + classify + cluster, match, delivery. Worker RSS is read from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from elasticsearch import Elasticsearch, helpers
from pydantic import SecretStr

from bench.bench_latency import Receiver, pct
from bench.bench_percolation import subscriptions, vocabulary
from bench.children import Children, TopicWatch, free_port, namespace
from cpwatch import topics
from cpwatch.namespace import drop_namespace
from cpwatch.settings import Settings
from cpwatch.topics import ensure_topics
from sinks.indices import ensure_indices

SUBSCRIPTIONS, ARTICLES, GAP_S = 100_000, 60, 0.3
WARMUP_DEADLINE_S = 600.0  # the worker loads and indexes every subscription first
ARTICLE_TIMEOUT_S = 30.0
GOAL_P99_S = 1.0
LEAD = (
    "The parliament of Ruritania passed a law on Tuesday making bitcoin legal tender and "
    "ordering the central bank to hold a strategic bitcoin reserve."
)


def rss_mb(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in MB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": out.get("VmRSS", 0.0), "peak_mb": out.get("VmHWM", 0.0)}


def nonce(k: int) -> str:
    return f"zq{k:04d}nonce"  # one token for the analyzer, in no vocabulary


def article(rng: random.Random, vocab: list[str], k: int) -> dict[str, Any]:
    """A policy event (the classifier says so) that only subscription k asks for by name; its
    vocabulary words make it a distinct story and give the candidate search real work."""
    words = rng.sample(vocab, 24)
    return {
        "id": f"bench-notify-{k}",
        "source": "bench",
        "title": f"Ruritania adopts bitcoin reserve law; {words[0]} {words[1]} {nonce(k)} vote",
        "text": f"{LEAD} {' '.join(words[2:13])} {nonce(k)} {' '.join(words[13:])}.",
        "published": "2026-11-30T10:00:00Z",
    }


class StageWatch(TopicWatch):
    """First arrival per key on ``policy-events`` (article id) and ``deliveries``
    (subscription id): where between POST and webhook the time goes."""

    POLL_MS = 50

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, topics.POLICY_EVENTS, topics.DELIVERIES, fetch_max_wait_ms=10)
        self.events: dict[str, float] = {}
        self.deliveries: dict[str, float] = {}

    def note(self, topic: str, doc: Any, now: float) -> None:
        if topic == topics.POLICY_EVENTS:
            self.events.setdefault(str(doc.get("id")), now)
        else:
            self.deliveries.setdefault(str(doc.get("subscription")), now)


class Harness:
    """A namespace with N stored subscriptions, a worker, an API and a webhook receiver."""

    def __init__(self, n_subs: int, n_articles: int) -> None:
        self.token = secrets.token_hex(16)
        self.settings, self.tmp = namespace(
            "bench-notify",
            api_host="127.0.0.1",
            api_port=free_port(),
            api_tokens=SecretStr(self.token),
            max_subscriptions=max(n_subs + n_articles + 10, 1),
        )
        self.n_subs, self.n_articles = n_subs, n_articles
        self.receiver = Receiver()
        self.watch = StageWatch(self.settings)
        self.children = Children(self.settings, self.tmp)
        self.sub_ids: dict[int, str] = {}
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{self.settings.api_port}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def __enter__(self) -> Harness:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        ensure_topics(self.settings)
        es = Elasticsearch(**self.settings.es_client_kwargs())
        try:
            ensure_indices(es, self.settings)
            t0 = time.perf_counter()
            self._bulk_subscriptions(es)
            self.bulk_load_s = time.perf_counter() - t0
        finally:
            es.close()
        self.children.start("api")
        self._wait_api()
        for k in range(self.n_articles + 1):  # 0: the warm-up article
            self.sub_ids[k] = self._subscribe(k)
        self.children.start("worker")
        self.watch.start()

    def _bulk_subscriptions(self, es: Elasticsearch) -> None:
        rng = random.Random(42)  # noqa: S311 - test data
        channel = {"type": "webhook", "url": self.receiver.url("/bg"), "secret": "b" * 32}
        subs = subscriptions(rng, vocabulary(rng), self.n_subs)
        actions = (
            {
                "_index": self.settings.index("subscriptions"),
                "_id": s.id,
                "_source": {**s.to_es_doc(), "channel": channel},
            }
            for s in subs
        )
        helpers.bulk(es, actions, chunk_size=2000)
        es.indices.refresh(index=self.settings.index("subscriptions"))

    def _wait_api(self) -> None:
        t0 = time.time()
        while time.time() - t0 < 60:
            try:
                if self.api.get("/healthz").status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"API did not start: {self.tmp / 'api.log'}")

    def _subscribe(self, k: int) -> str:
        body = {
            "name": f"notify latency {k}",
            "query": f"ruritania AND {nonce(k)}",
            "channel": {
                "type": "webhook",
                "url": self.receiver.url(f"/t/{k}"),
                "secret": secrets.token_hex(16),
            },
            "group_wait": "0s",
            "group_interval": "1s",
        }
        resp = self.api.post("/api/subscriptions", json=body)
        if resp.status_code != 201:
            raise RuntimeError(f"subscription refused: {resp.status_code} {resp.text}")
        return str(resp.json()["id"])

    def post(self, doc: dict[str, Any]) -> float:
        t0 = time.time()
        resp = self.api.post("/api/ingest/news", json=doc)
        if resp.status_code != 202:
            raise RuntimeError(f"ingest refused: {resp.status_code} {resp.text}")
        return t0

    def arrival(self, k: int, timeout: float) -> float | None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            hits = self.receiver.hits(f"/t/{k}")
            if hits:
                return hits[0][0]
            worker = self.children.procs["worker"]
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited with {worker.returncode}")
            time.sleep(0.005)
        return None

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.watch.stop.set()
        self.receiver.server.shutdown()
        self.api.close()
        self.children.stop()
        self.cleanup_problems = drop_namespace(self.settings)
        self.worker_log_tail = self.children.log_tail("worker")
        if not os.environ.get("CPWATCH_BENCH_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)


def summary(xs: list[float]) -> dict[str, Any]:
    xs = sorted(xs)
    if not xs:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(xs)}
    for name, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        out[f"{name}_s"] = round(pct(xs, p), 3)
    out["max_s"] = round(xs[-1], 3)
    return out


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the worker (collapsed stacks, idle frames included) until SIGINT."""
    exe = Path(sys.executable).with_name("py-spy")
    cmd = [str(exe), "record", "--pid", str(pid), "--rate", "100", "--idle", "-f", "raw"]
    return subprocess.Popen([*cmd, "-o", str(out)], stdout=subprocess.DEVNULL)


def run(
    n_subs: int = SUBSCRIPTIONS,
    n_articles: int = ARTICLES,
    gap_s: float = GAP_S,
    profile: Path | None = None,
) -> dict[str, Any]:
    rng = random.Random(7)  # noqa: S311 - test data
    vocab = vocabulary(random.Random(42))  # noqa: S311 - the subscriptions' vocabulary
    load = os.getloadavg()[0]
    result: dict[str, Any] = {"subscriptions": n_subs, "articles": n_articles, "gap_s": gap_s}
    h = Harness(n_subs, n_articles)
    with h:
        result["bulk_load_s"] = round(h.bulk_load_s, 1)
        t0 = time.time()
        h.post(article(rng, vocab, 0))
        if h.arrival(0, WARMUP_DEADLINE_S) is None:
            raise RuntimeError(f"warm-up article not delivered within {WARMUP_DEADLINE_S}s")
        result["warm_up_s"] = round(time.time() - t0, 1)
        worker_pid = h.children.procs["worker"].pid
        result["worker_after_load"] = rss_mb(worker_pid)
        spy = _py_spy(worker_pid, profile) if profile else None
        lat: list[float] = []
        stages: dict[str, list[float]] = {"to_policy_events": [], "match": [], "deliver": []}
        missing = 0
        for k in range(1, n_articles + 1):
            time.sleep(gap_s + rng.random() * gap_s)  # never two in one batch
            doc = article(rng, vocab, k)
            sent = h.post(doc)
            got = h.arrival(k, ARTICLE_TIMEOUT_S)
            if got is None:
                missing += 1
                continue
            lat.append(got - sent)
            ev, dl = h.watch.events.get(doc["id"]), h.watch.deliveries.get(h.sub_ids[k])
            if ev is not None and dl is not None:
                stages["to_policy_events"].append(ev - sent)
                stages["match"].append(dl - ev)
                stages["deliver"].append(got - dl)
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            spy.wait(timeout=60)
            result["profile"] = str(profile)
        result["latency"] = {**summary(lat), "missing": missing}
        result["series_s"] = [round(x, 3) for x in lat]  # in posting order: stalls show as runs
        result["stages"] = {k: summary(v) for k, v in stages.items()}
        result["background_deliveries"] = len(h.receiver.hits("/bg"))
        result["worker_end"] = rss_mb(worker_pid)
        result["goal_p99_s"] = GOAL_P99_S
        result["goal_met"] = missing == 0 and result["latency"].get("p99_s", 1e9) < GOAL_P99_S
    result["load_avg_1m"] = {"before": round(load, 2), "after": round(os.getloadavg()[0], 2)}
    result["cleanup_problems"] = h.cleanup_problems
    if not result["goal_met"]:
        result["worker_log_tail"] = h.worker_log_tail
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscriptions", type=int, default=SUBSCRIPTIONS)
    p.add_argument("--articles", type=int, default=ARTICLES)
    p.add_argument("--gap", type=float, default=GAP_S, help="pause after each arrival, s")
    p.add_argument("--profile", type=Path, help="py-spy the worker while measuring (raw stacks)")
    args = p.parse_args()
    json.dump(run(args.subscriptions, args.articles, args.gap, args.profile), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
