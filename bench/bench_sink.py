"""Our Elasticsearch sink vs a bare ``helpers.bulk`` of the same documents, in one run.

    .venv/bin/python -m bench.bench_sink [--docs 100000]

Bare: ``helpers.bulk`` (chunks of 500) of N article documents into a fresh index, timed to the
last acknowledged chunk. Ours: the same N documents pre-loaded on the `articles` topic, a
worker started on it, timed from the first document visible in the alias to the N-th (worker
start-up excluded), with the worker's CPU over the same window per document. Counts are read
every 0.2 s without forcing refreshes, which would slow indexing, so the last count may lag by
up to the 1 s refresh interval: ours is understated, if anything.
Rounds run bare, ours, ours, bare, so whichever side indexes while Elasticsearch still merges
the previous round's segments is each side once; the figures are the means of the two rounds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.bench_pipeline import ROOT, _cleanup, _produce, _spawn_worker
from bench.children import cpu_seconds
from cpwatch import topics
from cpwatch.settings import Settings
from cpwatch.topics import ensure_topics

N_DOCS = 100_000
DEADLINE_S = 240.0
WORDS = (
    "bitcoin reserve ministry central bank regulator licence stablecoin mining power "
    "treasury parliament tax exchange custody framework sanction imf loan"
).split()


def _docs(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        w = [WORDS[(i * k + 3) % len(WORDS)] for k in range(1, 40)]
        out.append(
            {
                "id": f"sink-{i}",
                "title": " ".join(w[:8]).capitalize(),
                "text": " ".join(w),
                "source": f"wire-{i % 7}",
                "published": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00Z",
                "is_policy_event": i % 3 == 0,
                "categories": ["regulation"] if i % 3 == 0 else [],
                "countries": ["PK"] if i % 5 == 0 else [],
                "severity": (i % 10) / 10,
            }
        )
    return out


def _count_no_refresh(es: Any, alias: str) -> int:
    try:
        return int(es.count(index=alias)["count"])
    except Exception:  # noqa: BLE001 - the alias appears when the worker has prepared it
        return 0


def _bare(es: Any, settings: Settings, docs: list[dict[str, Any]], tag: str) -> float:
    """Docs/s of a bare ``helpers.bulk`` into an index with the same template as ours."""
    from elasticsearch import helpers

    from sinks.indices import ensure_indices

    bare = settings.model_copy(update={"es_index_prefix": f"{settings.es_index_prefix}-{tag}"})
    ensure_indices(es, bare, ["articles"])
    t0 = time.perf_counter()
    helpers.bulk(
        es,
        ({"_index": bare.index("articles"), "_id": d["id"], "_source": d} for d in docs),
        chunk_size=500,
    )
    return len(docs) / (time.perf_counter() - t0)


def _ours(es: Any, settings: Settings, docs: list[dict[str, Any]], tmp: Path) -> dict[str, Any]:
    """Docs/s of a worker's sink draining the pre-loaded `articles` topic."""
    n_docs = len(docs)
    ensure_topics(settings)
    _produce(settings, topics.ARTICLES, [(d["id"], json.dumps(d).encode()) for d in docs])
    alias = settings.index("articles")
    with open(tmp / f"worker-{settings.es_index_prefix}.log", "wb") as log:
        proc = _spawn_worker(settings, log)
        try:
            first_t = first_n = None
            n, now = 0, time.perf_counter()
            deadline = now + DEADLINE_S
            while time.perf_counter() < deadline:
                n = _count_no_refresh(es, alias)
                now = time.perf_counter()
                if n and first_t is None:
                    first_t, first_n = now, n
                    cpu0 = cpu_seconds(proc.pid, children=False)
                if n >= n_docs:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode}; see {log.name}")
                time.sleep(0.2)
            if first_t is None or first_n is None:
                raise RuntimeError("no document indexed before the deadline")
            cpu = cpu_seconds(proc.pid, children=False) - cpu0
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    return {
        "completed": n >= n_docs,
        "indexed": n,
        "docs_per_s": (n - first_n) / max(now - first_t, 1e-9),
        "worker_cpu_us_per_doc": cpu / max(n - first_n, 1) * 1e6,
    }


def run(n_docs: int = N_DOCS) -> dict[str, Any]:
    from elasticsearch import Elasticsearch

    uid = f"bench-sink-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix=f"cpwatch-{uid}-"))
    base = Settings().model_copy(
        update={
            "rules_file": ROOT / "deploy" / "rules.example.yaml",
            "faust_data_dir": tmp / "faust",
        }
    )
    docs = _docs(n_docs)
    es = Elasticsearch(**base.es_client_kwargs())
    result: dict[str, Any] = {"docs": n_docs, "method": " ".join(__doc__.split("\n\n")[2].split())}
    rounds: list[Settings] = []
    bare: list[float] = []
    ours: list[dict[str, Any]] = []
    try:
        for k, side in enumerate(("bare", "ours", "ours", "bare")):
            if side == "bare":
                bare.append(
                    _bare(es, base.model_copy(update={"es_index_prefix": uid}), docs, f"bare{k}")
                )
                continue
            s = base.model_copy(
                update={
                    "topic_prefix": f"{uid}-{k}-",
                    "es_index_prefix": f"{uid}-ours{k}",
                    "faust_data_dir": tmp / f"faust-{k}",
                }
            )
            rounds.append(s)
            ours.append(_ours(es, s, docs, tmp))
        bare_rate, our_rate = sum(bare) / len(bare), sum(o["docs_per_s"] for o in ours) / len(ours)
        result["bare_bulk"] = {"docs_per_s": round(bare_rate), "rounds": [round(b) for b in bare]}
        result["ours"] = {
            "completed": all(o["completed"] for o in ours),
            "indexed": min(o["indexed"] for o in ours),
            "docs_per_s": round(our_rate),
            "rounds": [round(o["docs_per_s"]) for o in ours],
            # The worker's CPU over the same window (its Kafka reads, the sink's bulk requests).
            "worker_cpu_us_per_doc": round(
                sum(o["worker_cpu_us_per_doc"] for o in ours) / len(ours), 1
            ),
            "ratio_vs_bare_bulk": round(our_rate / bare_rate, 3),
            "goal_ratio": 0.8,
        }
    finally:
        result["cleanup_problems"] = [p for s in rounds for p in _cleanup(s)]
        es.options(ignore_status=404).indices.delete(index=f"{uid}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{uid}-*")
        es.close()
    shutil.rmtree(tmp, ignore_errors=True)  # kept when a round failed: its worker's log is there
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=N_DOCS)
    json.dump(run(parser.parse_args().docs), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
