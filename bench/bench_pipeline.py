"""End-to-end throughput of our Faust pipeline on the real engines, next to a bare consumer.

One run, one unique topic prefix (``bench-<uuid>-``) and index prefix, everything deleted after:

(a) produce: 2 holdings to ``holdings``, then N price ticks (BTC-USD, venue "bench", 1 s apart,
    every price different) to ``price-ticks`` with our ``producers.kafka.Producer``.
(b) limit: a bare aiokafka consumer (no group, partitions assigned) reads ``price-ticks`` from
    the beginning doing nothing; timed from its first to its N-th message.
(c) ours: a worker subprocess (``python -m app.cli worker``) is started on the prefix whose
    topics already hold the N ticks (1 s apart in event time). Timing runs from the first
    commit of route-ticks, the first stage (its committed offset then: ticks already routed),
    to the valuation stamped with the last tick's ts, out of the last stage (the holder stage
    keeps the last valuation per holder and minute); ticks/s = ticks not yet routed at the start
    / elapsed. Worker start-up (imports, group join, table recovery) is therefore excluded, and
    a later stage starting late counts against the rate. (Timing from the first valuation, as
    before the holder stage, counted only the last stage draining its backlog: 1.36 times a bare
    consumer in one run.)
(c') the Faust floor: a do-nothing Faust agent (bench/faust_floor.py) reading the same topic.
(d) news: after (c) completes, M articles are produced to ``news``. Progress is what the
    articles sink committed every 0.2 s: it commits a batch only once Elasticsearch acknowledged
    it, so this counts acknowledged documents without touching the cluster (forcing a refresh
    five times a second made Elasticsearch build and merge tiny segments: a fifth of the box's
    CPU went to the measurement). articles/s = (M - acknowledged at the first non-zero reading)
    / (time all M were acknowledged - time of that reading). A refresh and count at the end
    check that all M are searchable.

    .venv/bin/python -m bench.bench_pipeline [--ticks 100000] [--news 2000]

The worker inherits the environment: ``CPWATCH_TREASURY_ENGINE=scalar`` measures the reference
engine against the same bare consumer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from bench.children import cpu_seconds
from cpwatch import topics
from cpwatch.namespace import child_env, drop_namespace
from cpwatch.records import HoldingUpdate, NewsArticle, PriceTick
from cpwatch.settings import Settings
from cpwatch.topics import ensure_topics
from producers.kafka import Producer
from runtime.consumers import group_id
from streams import tick_router
from streams.alerts import iso_utc

METHOD = (
    "bare consumer: N / (time from seek_to_beginning to N-th message); ours: worker started on "
    "pre-filled topics, timed from route-ticks' first commit (ticks routed then are not "
    "counted) to the valuation stamped with the last tick's ts (worker start-up excluded; the "
    "holder stage keeps the last valuation per holder and minute); news: the articles sink's "
    "committed offsets (acknowledged by ES) read every 0.2 s, (M - acked at first non-zero)/"
    "(time to M - time of first non-zero), then one refresh and count; ticks are 1 s apart in "
    "event time"
)
ROOT = Path(__file__).resolve().parent.parent
N_TICKS = 100_000
N_NEWS = 8_000  # at ~800 articles/s, 2,000 took under 4 s, a quarter of it the drain at the end
T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOLDERS = (("bench-state", "state", 1_000.0), ("bench-co", "company", 250.0))
TICKS_DEADLINE_S = 150.0  # after the first valuation; beyond it a partial rate is reported
NEWS_DEADLINE_S = 60.0
STARTUP_DEADLINE_S = 90.0


def _env(settings: Settings) -> dict[str, str]:
    return child_env(settings)


def _spawn_worker(settings: Settings, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """A `cpwatch worker` child on these settings, its output to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        env=_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def _ticks(n: int) -> list[PriceTick]:
    # One tick per second (a live ticker's pace or slower); strictly increasing price, so the
    # last tick's valuation (ts == last tick) marks the end of processing.
    return [
        PriceTick(
            venue="bench",
            symbol="BTC-USD",
            price=60_000 + i * 0.01,
            size=0.01,
            ts=T0 + timedelta(seconds=i),
            seq=i,
        )
        for i in range(n)
    ]


def _holdings() -> list[HoldingUpdate]:
    return [
        HoldingUpdate(
            holder=h,
            name=h,
            kind=kind,
            btc=btc,
            as_of=T0 - timedelta(days=1),  # type: ignore[arg-type]
            avg_cost_usd=55_000,
        )
        for h, kind, btc in HOLDERS
    ]


def _articles(n: int) -> list[NewsArticle]:
    from bench.bench_classifier import synthetic_articles

    base = synthetic_articles()
    return [
        NewsArticle(
            id=f"bench-{i}",
            source="bench",
            title=base[i % len(base)][0],
            text=base[i % len(base)][1],
            published=T0,
        )
        for i in range(n)
    ]


def _produce(settings: Settings, topic: str, batch: list[tuple[str, bytes]]) -> float:
    with Producer(settings, client_id="bench-pipeline") as producer:
        start = time.perf_counter()
        for key, value in batch:
            producer.send(topic, key, value)
        producer.flush()
        return time.perf_counter() - start


async def _bare_consume(settings: Settings, n: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    name = settings.topic(topics.PRICE_TICKS)
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **settings.aiokafka_client_kwargs(),
    )
    await consumer.start()
    try:
        parts = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())]
        if not parts:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            parts = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name))]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        t_start = time.perf_counter()
        seen, first = 0, None
        while seen < n:
            got = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for msgs in got.values():
                if first is None and msgs:
                    first = time.perf_counter()
                seen += len(msgs)
            if time.perf_counter() - t_start > 120:
                break
        end = time.perf_counter()
    finally:
        await consumer.stop()
    assert first is not None
    return {
        "messages": seen,
        "seconds_first_to_last": round(end - first, 3),
        "seconds_from_seek": round(end - t_start, 3),
        "ticks_per_s": round(seen / (end - t_start)),
    }


class ValuationWatch(threading.Thread):
    """Reads ``treasury-valuations`` from the beginning; notes arrival times and the last ts."""

    def __init__(self, settings: Settings, last_ts: str) -> None:
        super().__init__(daemon=True)
        self.settings, self.last_ts = settings, last_ts
        self.count = 0
        self.done_at: float | None = None
        self.done_holders: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            self.settings.topic(topics.TREASURY_VALUATIONS),
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **self.settings.kafka_client_kwargs(),
        )
        try:
            while not self.stop.is_set():
                for msgs in consumer.poll(timeout_ms=200, max_records=5_000).values():
                    now = time.perf_counter()
                    self.count += len(msgs)
                    for m in msgs:
                        if m.value.find(self.last_ts.encode()) >= 0:
                            doc = json.loads(m.value)
                            if doc["ts"] == self.last_ts:
                                self.done_holders.add(doc["holder"])
                    if len(self.done_holders) == len(HOLDERS) and self.done_at is None:
                        self.done_at = now
                        return
        finally:
            consumer.close()


def _group_committed(admin: Any, group: str) -> int:
    """Records ``group`` has committed (a sink commits only what Elasticsearch acknowledged;
    route-ticks only what Kafka acknowledged)."""
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    except Exception:  # noqa: BLE001 - the group appears once the sink has joined
        return 0
    return sum(max(0, o.offset) for o in offsets.values())


def _es_count(es: Any, alias: str) -> int:
    try:
        es.indices.refresh(index=alias)
        return int(es.count(index=alias)["count"])
    except Exception:  # noqa: BLE001 - the alias appears when the worker has prepared it
        return 0


def _cleanup(settings: Settings) -> list[str]:
    return drop_namespace(settings)


def _faust_floor(settings: Settings, n: int, tmp: Path) -> dict[str, Any]:
    """A do-nothing Faust agent on the same topic (bench/faust_floor.py), first batch to last."""
    out = tmp / "faust_floor.txt"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.faust_floor",
            settings.topic(topics.PRICE_TICKS),
            str(n),
            str(out),
            str(tmp / "faust-floor-data"),
        ],
        env=_env(settings),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.perf_counter() + 180
    while not out.exists() and proc.poll() is None and time.perf_counter() < deadline:
        time.sleep(0.2)
    time.sleep(0.2)  # the file is written in one call; let it land
    proc.terminate()
    proc.wait(timeout=30)
    return {"ticks_per_s": round(float(out.read_text()))} if out.exists() else {"ticks_per_s": None}


def run(n_ticks: int = N_TICKS, n_news: int = N_NEWS) -> dict[str, Any]:
    from elasticsearch import Elasticsearch

    uid = f"bench-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix=f"cpwatch-{uid}-"))
    rules = tmp / "rules.yaml"
    threshold = HOLDERS[0][2] * (60_000 + n_ticks * 0.005)  # crossed half-way through the ticks
    rules.write_text(
        json.dumps(
            {
                "rules": [
                    {
                        "id": "bench-level",
                        "holder": "*",
                        "type": "level",
                        "threshold_usd": threshold,
                    }
                ]
            }
        )
    )
    settings = Settings().model_copy(
        update={
            "topic_prefix": f"{uid}-",
            "es_index_prefix": uid,
            "faust_data_dir": tmp / "faust",
            "rules_file": rules,
        }
    )
    result: dict[str, Any] = {
        "ticks": n_ticks,
        "news": n_news,
        "prefix": settings.topic_prefix,
        "method": METHOD,
        "treasury_engine": settings.treasury_engine,  # CPWATCH_TREASURY_ENGINE, for the worker
    }
    proc: subprocess.Popen[bytes] | None = None
    log_path = tmp / "worker.log"
    try:
        ensure_topics(settings)
        # (a) produce holdings, then ticks
        _produce(settings, topics.HOLDINGS, [(h.key, h.to_bytes()) for h in _holdings()])
        ticks = _ticks(n_ticks)
        batch = [(t.key, t.to_bytes()) for t in ticks]
        secs = _produce(settings, topics.PRICE_TICKS, batch)
        result["produce"] = {"seconds": round(secs, 3), "ticks_per_s": round(n_ticks / secs)}
        del batch
        # (b) the limit: a bare consumer
        result["bare_consumer"] = asyncio.run(_bare_consume(settings, n_ticks))
        result["faust_floor"] = _faust_floor(settings, n_ticks, tmp)
        # (c) ours: worker on the pre-filled topics
        watch = ValuationWatch(settings, iso_utc(ticks[-1].ts))
        watch.start()
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(**settings.kafka_client_kwargs())
        route_group = group_id(settings, tick_router.STAGE)
        with open(log_path, "wb") as log:
            t_spawn = time.perf_counter()
            proc = _spawn_worker(settings, log)
            # The first stage's first commit starts the clock: the valuations come out of the
            # last stage, which may start later and then drain a backlog faster than ticks flow.
            while not (routed := _group_committed(admin, route_group)):
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode}; see {log_path}")
                if time.perf_counter() - t_spawn > STARTUP_DEADLINE_S:
                    raise RuntimeError(f"nothing routed within {STARTUP_DEADLINE_S}s of start")
                time.sleep(0.02)
            t_first = time.perf_counter()
            admin.close()
            startup = t_first - t_spawn
            cpu_first = cpu_seconds(proc.pid)
            while watch.done_at is None and time.perf_counter() - t_first < TICKS_DEADLINE_S:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode}; see {log_path}")
                time.sleep(0.1)
            watch.stop.set()
            watch.join(timeout=5)
            end = watch.done_at or time.perf_counter()
            cpu_used = cpu_seconds(proc.pid) - cpu_first  # read up to ~0.1 s after done_at
            # Every tick not yet routed at the first commit, through to the last valuation.
            processed = n_ticks - routed if watch.done_at else 0
            rate = processed / (end - t_first)
            limit = result["bare_consumer"]["ticks_per_s"]
            result["ours"] = {
                "completed": watch.done_at is not None,
                "valuations": watch.count,
                "ticks_processed": round(processed),
                "worker_startup_s": round(startup, 2),
                "ticks_routed_at_start": routed,
                "seconds_first_to_last": round(end - t_first, 3),
                "ticks_per_s": round(rate),
                "ratio_vs_bare_consumer": round(rate / limit, 4),
                # on a shared box the wall-clock rate follows the load; CPU per tick does not
                "worker_cpu_s": round(cpu_used, 2),
                "ticks_per_worker_cpu_s": round(processed / cpu_used) if cpu_used > 0 else None,
                "goal_ratio": 0.25,  # issue 18: a quarter of a bare consumer of the same topic
            }
            # (d) news end to end, on the running worker
            admin = KafkaAdminClient(**settings.kafka_client_kwargs())
            group = group_id(settings, "sink-articles")
            news = [(a.id, a.to_bytes()) for a in _articles(n_news)]
            _produce(settings, topics.NEWS, news)
            t_sent = time.perf_counter()
            first_t = first_n = None
            news_cpu0 = loop_cpu0 = 0.0
            n = 0
            while time.perf_counter() - t_sent < NEWS_DEADLINE_S:
                n = _group_committed(admin, group)
                now = time.perf_counter()
                if n and first_t is None:
                    first_t, first_n = now, n
                    news_cpu0, loop_cpu0 = (
                        cpu_seconds(proc.pid),
                        cpu_seconds(proc.pid, children=False),
                    )
                if n >= n_news:
                    break
                time.sleep(0.2)
            end = time.perf_counter()
            news_cpu = cpu_seconds(proc.pid) - news_cpu0
            loop_cpu = cpu_seconds(proc.pid, children=False) - loop_cpu0
            admin.close()
            es = Elasticsearch(**settings.es_client_kwargs())
            alias = settings.index("articles")
            searchable = _es_count(es, alias)
            es.close()
            if first_t is None:
                raise RuntimeError(f"no article reached {alias} within {NEWS_DEADLINE_S}s")
            span, done = end - first_t, n - (first_n or 0)
            result["news_e2e"] = {
                "completed": n >= n_news and searchable >= n_news,
                "acknowledged": n,
                "searchable": searchable,
                "count_at_first": first_n,
                "seconds_after_produce": round(end - t_sent, 3),
                "seconds_first_to_last": round(span, 3),
                "articles_per_s": round(done / span, 1) if span > 0 else None,
                # less load-sensitive than the rate: the worker's CPU per article, all its
                # processes and its event loop's process alone
                "worker_cpu_ms_per_article": round(news_cpu / done * 1e3, 3) if done else None,
                "loop_cpu_ms_per_article": round(loop_cpu / done * 1e3, 3) if done else None,
            }
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        problems = _cleanup(settings)
        if problems:
            result["cleanup_problems"] = problems
        if log_path.exists():
            result["worker_log_tail"] = log_path.read_text(errors="replace").splitlines()[-5:]
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=N_TICKS)
    parser.add_argument("--news", type=int, default=N_NEWS)
    args = parser.parse_args()
    json.dump(run(args.ticks, args.news), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
