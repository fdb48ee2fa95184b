"""Our Elasticsearch sink vs a bare ``helpers.bulk`` of the same documents, in one run.

    .venv/bin/python -m bench.bench_sink [--docs 50000]

Bare: ``helpers.bulk`` (chunks of 500) of N article documents into a fresh index, timed to the
last acknowledged chunk. Ours: the same N documents pre-loaded on the `articles` topic, a
worker started on it, timed from the first document visible in the alias to the N-th (worker
start-up excluded; counted every 0.2 s without forcing refreshes, which would slow indexing,
so the last count may lag by up to the 1 s refresh interval: ours is understated, if anything).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.bench_pipeline import ROOT, _cleanup, _env, _produce
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


def run(n_docs: int = N_DOCS) -> dict[str, Any]:
    from elasticsearch import Elasticsearch, helpers

    from sinks.indices import ensure_indices

    uid = f"bench-sink-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix=f"cpwatch-{uid}-"))
    settings = Settings().model_copy(
        update={
            "topic_prefix": f"{uid}-",
            "es_index_prefix": uid,
            "faust_data_dir": tmp / "faust",
            "rules_file": ROOT / "deploy" / "rules.example.yaml",
        }
    )
    docs = _docs(n_docs)
    es = Elasticsearch(**settings.es_client_kwargs())
    result: dict[str, Any] = {"docs": n_docs, "method": __doc__.split("\n\n")[2].replace("\n", " ")}
    proc = None
    try:
        # The limit: bare helpers.bulk into an index with the same template as ours.
        bare = settings.model_copy(update={"es_index_prefix": f"{uid}-bare"})
        ensure_indices(es, bare, ["articles"])
        t0 = time.perf_counter()
        helpers.bulk(
            es,
            ({"_index": bare.index("articles"), "_id": d["id"], "_source": d} for d in docs),
            chunk_size=500,
        )
        bare_s = time.perf_counter() - t0
        result["bare_bulk"] = {"seconds": round(bare_s, 3), "docs_per_s": round(n_docs / bare_s)}

        ensure_topics(settings)
        _produce(settings, topics.ARTICLES, [(d["id"], json.dumps(d).encode()) for d in docs])
        alias = settings.index("articles")
        with open(tmp / "worker.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cpwatch.cli", "worker"],
                env=_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
            first_t = first_n = None
            deadline = time.perf_counter() + DEADLINE_S
            while time.perf_counter() < deadline:
                n = _count_no_refresh(es, alias)
                now = time.perf_counter()
                if n and first_t is None:
                    first_t, first_n = now, n
                if n >= n_docs:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"worker exited with {proc.returncode}; see {tmp / 'worker.log'}"
                    )
                time.sleep(0.2)
            if first_t is None or first_n is None:
                raise RuntimeError("no document indexed before the deadline")
            rate = (n - first_n) / max(now - first_t, 1e-9)
        result["ours"] = {
            "completed": n >= n_docs,
            "indexed": n,
            "docs_per_s": round(rate),
            "ratio_vs_bare_bulk": round(rate / result["bare_bulk"]["docs_per_s"], 3),
            "goal_ratio": 0.8,
        }
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        result["cleanup_problems"] = _cleanup(settings)
        es.options(ignore_status=404).indices.delete(index=f"{uid}-bare-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{uid}-bare-*")
        es.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=N_DOCS)
    json.dump(run(parser.parse_args().docs), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
