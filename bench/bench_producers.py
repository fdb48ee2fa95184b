"""Producer throughput: our tuned ``producers.kafka.Producer`` next to a bare kafka-python loop.

Both send the same pre-serialised records (price ticks and news articles) to fresh topics on
the broker in ``CPWATCH_KAFKA_BOOTSTRAP`` and are timed from the first ``send`` until ``flush``
returns, i.e. until every record is acknowledged. A small grid of compression and batching
settings is also timed to justify the choice in ``producers.kafka.TUNING``. Prints one JSON
document; the bench topics are deleted afterwards.

    .venv/bin/python bench/bench_producers.py [--ticks 200000] [--news 20000] [--grid]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from cpwatch import topics
from cpwatch.records import NewsArticle, PriceTick
from cpwatch.settings import Settings
from cpwatch.topics import TopicSpec, ensure_topics
from producers.kafka import TUNING, Producer
from producers.news_jsonl import read_jsonl

VENUES = ("coinbase", "kraken", "replay", "bitstamp")
Batch = list[tuple[str, bytes]]


def make_tick_records(n: int) -> list[PriceTick]:
    """``n`` realistic ticks spread over a few venue keys (so over several partitions)."""
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    return [
        PriceTick(
            venue=VENUES[i % len(VENUES)],
            symbol="BTC-USD",
            price=60_000 + (i % 5000) * 0.37,
            size=0.001 * (i % 97 + 1),
            ts=t0 + timedelta(milliseconds=250 * i),
            seq=i,
        )
        for i in range(n)
    ]


def make_ticks(n: int) -> Batch:
    return [(t.key, t.to_bytes()) for t in make_tick_records(n)]


def run_ours_records(settings: Settings, topic: str, records: list[PriceTick]) -> float:
    """Like ``run_ours`` but serialising each record in the loop, as the producers do."""
    with Producer(settings, client_id="bench-ours-records") as producer:
        start = time.perf_counter()
        for tick in records:
            producer.send(topic, tick.key, tick)
        producer.flush()
        elapsed = time.perf_counter() - start
    return len(records) / elapsed


def make_news(n: int) -> Batch:
    """``n`` articles cycled from the bundled sample, each with its own id."""
    path = Path(str(resources.files("cpwatch") / "data" / "sample_news.jsonl"))
    base = [a for a in read_jsonl(path) if isinstance(a, NewsArticle)]
    out: Batch = []
    for i in range(n):
        article = base[i % len(base)].model_copy(update={"id": f"bench-{i}"})
        out.append((article.id, article.to_bytes()))
    return out


def run_ours(settings: Settings, topic: str, batch: Batch, **overrides: Any) -> float:
    with Producer(settings, client_id="bench-ours", **overrides) as producer:
        start = time.perf_counter()
        for key, value in batch:
            producer.send(topic, key, value)
        producer.flush()
        elapsed = time.perf_counter() - start
    return len(batch) / elapsed


def run_bare(settings: Settings, topic: str, batch: Batch) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(client_id="bench-bare", **settings.kafka_client_kwargs())
    full = settings.topic(topic)
    try:
        start = time.perf_counter()
        for key, value in batch:
            producer.send(full, key=key.encode(), value=value)
        producer.flush()
        elapsed = time.perf_counter() - start
    finally:
        producer.close()
    return len(batch) / elapsed


GRID: list[dict[str, Any]] = [
    {"compression_type": None, "linger_ms": 20, "batch_size": 256 * 1024},
    {"compression_type": "gzip", "linger_ms": 20, "batch_size": 256 * 1024},
    {"compression_type": "lz4", "linger_ms": 20, "batch_size": 256 * 1024},
    {"compression_type": "lz4", "linger_ms": 5, "batch_size": 64 * 1024},
    {"compression_type": "lz4", "linger_ms": 50, "batch_size": 1024 * 1024},
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument("--news", type=int, default=20_000)
    parser.add_argument("--grid", action="store_true", help="also time the tuning grid")
    args = parser.parse_args()

    settings = Settings().model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}-"})
    specs = (TopicSpec(topics.PRICE_TICKS), TopicSpec(topics.NEWS))
    ensure_topics(settings, specs)
    ticks, news = make_ticks(args.ticks), make_news(args.news)
    records = make_tick_records(args.ticks)
    # The inputs are long-lived: keep the cyclic GC from rescanning them during timed loops
    # (a producer streaming from a file never holds them all, so this is the fairer number).
    gc.collect()
    gc.freeze()
    result: dict[str, Any] = {
        "ticks": args.ticks,
        "news": args.news,
        "ours_settings": {k: v for k, v in TUNING.items()},
    }
    try:
        run_ours(settings, topics.PRICE_TICKS, ticks[:5000])  # warm-up: metadata, connections
        result["ticks_per_s"] = {
            "ours": run_ours(settings, topics.PRICE_TICKS, ticks),
            "bare_default": run_bare(settings, topics.PRICE_TICKS, ticks),
        }
        result["news_per_s"] = {
            "ours": run_ours(settings, topics.NEWS, news),
            "bare_default": run_bare(settings, topics.NEWS, news),
        }
        result["ticks_per_s_ours_incl_serialisation"] = round(
            run_ours_records(settings, topics.PRICE_TICKS, records)
        )
        for kind in ("ticks_per_s", "news_per_s"):
            rates = result[kind]
            ours, bare = rates["ours"], rates["bare_default"]
            result[kind] = {
                "ours": round(ours),
                "bare_default": round(bare),
                "ratio": round(ours / bare, 2),
            }
        if args.grid:
            result["grid_ticks_per_s"] = [
                {**cfg, "rate": round(run_ours(settings, topics.PRICE_TICKS, ticks, **cfg))}
                for cfg in GRID
            ]
    finally:
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(**settings.kafka_client_kwargs())
        admin.delete_topics([settings.topic(s.name) for s in specs])
        admin.close()
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
