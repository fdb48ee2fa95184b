"""Story clusterer cost per event (``streams.dedup``), and optionally news end to end vs the
classifier alone in one run.

Micro-bench (no engines; CPU seconds of this process, so other jobs on the box matter less):

- ``signature``: the MinHash signature of one article; next to it ``_reference_signature``
  (the scalar Python definition) when the module has it.
- ``assign`` on two workloads, each through one ``StoryClusterer(max_entries=5000)`` like the
  news agent's (``MAX_STORIES``):
  ``pipeline``: the policy events among bench_pipeline's news (its 20 synthetic articles
  repeated, so each story comes back ~100 times: many candidates per event);
  ``distinct``: generated stories (random words from a made-up vocabulary), one in four
  followed by 1-3 reworded copies; 3x ``max_entries`` articles, so the store fills and evicts.

``--e2e`` then runs ``bench.bench_classifier`` and ``bench.bench_pipeline`` (needs the stack)
and reports news end to end / classifier alone from that one run.

    .venv/bin/python -m bench.bench_dedup [--e2e [--no-micro]] [--ticks 20000] [--news 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from streams import dedup
from streams.story_processor import MAX_STORIES  # the news agent's store size

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _vocabulary(rnd: random.Random, n: int = 4_000) -> list[str]:
    syll = ["ka", "lo", "mi", "ten", "ras", "vo", "qui", "bel", "dor", "un", "sa", "fi", "gre"]
    return ["".join(rnd.choice(syll) for _ in range(rnd.randint(2, 4))) for _ in range(n)]


def generated_stories(n: int, seed: int = 11) -> list[tuple[str, str]]:
    """``n`` (title, text) pairs of ~200 random words; one story in four is followed by 1-3
    variants with ~15 % of the words replaced and a sentence dropped."""
    rnd = random.Random(seed)
    vocab = _vocabulary(rnd)
    out: list[tuple[str, str]] = []
    while len(out) < n:
        sentences = [" ".join(rnd.choices(vocab, k=rnd.randint(12, 25))) for _ in range(10)]
        title = " ".join(rnd.choices(vocab, k=7))
        out.append((title, ". ".join(sentences)))
        if rnd.random() < 0.25:
            for _ in range(rnd.randint(1, 3)):
                kept = [s for s in sentences if rnd.random() > 0.1]
                words = " ".join(kept).split()
                words = [rnd.choice(vocab) if rnd.random() < 0.15 else w for w in words]
                out.append((title, " ".join(words)))
    return out[:n]


def pipeline_events() -> list[tuple[str, str]]:
    """The policy events among bench_pipeline's 2,000 news articles, in its order."""
    from bench.bench_classifier import synthetic_articles
    from streams.classifier import classify

    base = synthetic_articles()
    is_event = [classify(t, x).is_policy_event for t, x in base]
    return [base[i % len(base)] for i in range(2_000) if is_event[i % len(base)]]


def _cpu_us(fn: Callable[[], object], n: int) -> float:
    t = time.process_time()
    fn()
    return round((time.process_time() - t) / n * 1e6, 1)


def _assign(articles: list[tuple[str, str]]) -> dict[str, Any]:
    sc = dedup.StoryClusterer(max_entries=MAX_STORIES)
    clusters: list[str] = []

    def go() -> None:
        for i, (title, text) in enumerate(articles):
            published = T0 + timedelta(seconds=i)
            clusters.append(sc.assign(f"a{i:06d}", title, text, published)[0])

    us = _cpu_us(go, len(articles))
    return {
        "events": len(articles),
        "cpu_us_per_event": us,
        "events_per_cpu_s": round(1e6 / us),
        "clusters": len(set(clusters)),
        "held": len(sc),
    }


def micro() -> dict[str, Any]:
    events = pipeline_events()
    distinct = generated_stories(3 * MAX_STORIES)
    sample = distinct[:300]
    out: dict[str, Any] = {
        "signature_cpu_us": _cpu_us(lambda: [dedup.signature(*a) for a in sample], len(sample))
    }
    ref = getattr(dedup, "_reference_signature", None)
    if ref is not None:
        out["reference_signature_cpu_us"] = _cpu_us(lambda: [ref(*a) for a in sample], len(sample))
    out["pipeline"] = _assign(events)
    out["distinct"] = _assign(distinct)
    return out


def e2e(n_ticks: int, n_news: int) -> dict[str, Any]:
    from bench import bench_classifier, bench_pipeline

    clf = bench_classifier.run()
    pipe = bench_pipeline.run(n_ticks, n_news)
    news = pipe.get("news_e2e") or {}
    alone = clf["synthetic"]["articles_per_s"]
    rate = news.get("articles_per_s")
    return {
        "classifier_alone_articles_per_s": alone,
        "news_e2e": news,
        "ratio_news_e2e_vs_classifier": round(rate / alone, 3) if rate else None,
        "goal_ratio": 0.5,
        "ticks_per_s": pipe.get("ours", {}).get("ticks_per_s"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--e2e", action="store_true", help="also news end to end (needs stack)")
    parser.add_argument("--ticks", type=int, default=20_000)
    parser.add_argument("--news", type=int, default=2_000)
    parser.add_argument("--no-micro", action="store_true", help="only the --e2e part")
    args = parser.parse_args()
    result: dict[str, Any] = {} if args.no_micro else {"micro": micro()}
    if args.e2e:
        result["e2e"] = e2e(args.ticks, args.news)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
