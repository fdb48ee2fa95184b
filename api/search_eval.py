"""``cpwatch eval --search``: ranking quality of search on judged queries over real articles.

Indexes the dev articles into a throw-away index namespace, runs each judged query through the
same ``parse_params`` + ``search_service.search`` path as the API, and scores the top 10 against
the judgments (binary grades): nDCG@10 and recall@10, per query and averaged. Two set-ups are
scored side by side: "before" (the old plain analyzer, the query handed to simple_query_string as
typed) and "now" (the english analyzer and cpwatch's own query parser).
"""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch, helpers

from api import search_service
from api.search import parse_params
from cpwatch.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
JUDGMENTS = ROOT / "bench" / "search_judgments.json"
DEV_DIR = ROOT.parent / "shared" / "data" / "news"
DEV_FILES = ("dev.jsonl", "dev2.jsonl")
K = 10


def ndcg_at_k(ranked: list[str], relevant: set[str], k: int = K) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def recall_at_k(ranked: list[str], relevant: set[str], k: int = K) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


def load_articles(paths: Iterable[Path]) -> list[dict[str, Any]]:
    docs = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                a = json.loads(line)
                docs.append(
                    {k: a.get(k) for k in ("id", "title", "text", "published", "source_url")}
                )
    return docs


def _run(
    es: Elasticsearch,
    settings: Settings,
    docs: list[dict[str, Any]],
    queries: list[dict[str, Any]],
    *,
    english: bool,
    parsed: bool,
) -> list[tuple[float, float, list[str]]]:
    from sinks.indices import ensure_indices

    s = settings.model_copy(update={"es_index_prefix": f"eval-search-{uuid.uuid4().hex[:8]}"})
    alias = s.index("articles")
    ensure_indices(es, s, ["articles"], english=english)
    try:
        helpers.bulk(
            es, ({"_index": alias, "_id": d["id"], "_source": d} for d in docs), refresh=True
        )
        out = []
        for j in queries:
            p = parse_params(j["q"], index="articles", size=K)
            if not parsed:  # what cpwatch did before: the text as typed
                p = dataclasses.replace(p, expr=p.q)
            ranked = [h["id"] for h in search_service.search(es, s, p)["hits"]]
            rel = set(j["relevant"])
            out.append((ndcg_at_k(ranked, rel), recall_at_k(ranked, rel), ranked))
        return out
    finally:
        for index in es.indices.get_alias(name=alias, ignore_unavailable=True):
            es.indices.delete(index=index, ignore_unavailable=True)
        es.indices.delete_index_template(name=alias, ignore=[404])


def evaluate(
    settings: Settings,
    articles: list[Path] | None = None,
    judgments: Path = JUDGMENTS,
) -> dict[str, Any]:
    """Score "before" and "now"; raises FileNotFoundError naming what is missing."""
    paths = articles or [DEV_DIR / f for f in DEV_FILES]
    missing = [p for p in [*paths, judgments] if not p.exists()]
    if missing:
        raise FileNotFoundError(", ".join(map(str, missing)))
    docs = load_articles(paths)
    queries = json.loads(judgments.read_text(encoding="utf-8"))["queries"]
    es = search_service.client(settings)
    try:
        from sinks.indices import has_english

        if not has_english(es):
            raise RuntimeError(
                f"Elasticsearch at {settings.es_url} has no `english` analyzer; on the local"
                " stack restart it (cpwatch stack down && cpwatch stack up) to load the plugin"
            )
        before = _run(es, settings, docs, queries, english=False, parsed=False)
        now = _run(es, settings, docs, queries, english=True, parsed=True)
    finally:
        es.close()
    rows = [
        {"q": j["q"], "relevant": len(j["relevant"]), "before": b[:2], "now": n[:2]}
        for j, b, n in zip(queries, before, now, strict=True)
    ]

    def mean(run: list[tuple[float, float, list[str]]], i: int) -> float:
        return sum(r[i] for r in run) / len(run)

    return {
        "articles": len(docs),
        "queries": rows,
        "before": {"ndcg@10": mean(before, 0), "recall@10": mean(before, 1)},
        "now": {"ndcg@10": mean(now, 0), "recall@10": mean(now, 1)},
    }


def format_report(result: dict[str, Any]) -> str:
    lines = [
        f"search relevance: {len(result['queries'])} judged queries over"
        f" {result['articles']} dev articles (top {K})",
        f"{'query':46} {'rel':>3}  {'nDCG before':>11} {'now':>5}"
        f"  {'recall before':>13} {'now':>5}",
    ]
    for r in result["queries"]:
        (nb, rb), (nn, rn) = r["before"], r["now"]
        lines.append(
            f"{r['q'][:46]:46} {r['relevant']:>3}  {nb:>11.3f} {nn:>5.3f}  {rb:>13.3f} {rn:>5.3f}"
        )
    b, n = result["before"], result["now"]
    lines.append(
        f"{'mean':46} {'':>3}  {b['ndcg@10']:>11.3f} {n['ndcg@10']:>5.3f}"
        f"  {b['recall@10']:>13.3f} {n['recall@10']:>5.3f}"
    )
    return "\n".join(lines)
