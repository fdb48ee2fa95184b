"""Run every benchmark, print a Markdown table, write bench/results/latest.json.

    .venv/bin/python -m bench.run        (what ``make bench`` runs)

A failing benchmark is shown as ``failed: reason`` and the others still run; the exit code is 1
if any failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def _producers() -> dict[str, Any]:
    # bench_producers is a script with its own argparse main: run it as one, parse its JSON.
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_producers", "--ticks", "100000", "--news", "10000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1])
    return json.loads(proc.stdout)


def _classifier() -> dict[str, Any]:
    from bench import bench_classifier

    return bench_classifier.run()


def _dedup() -> dict[str, Any]:
    from bench import bench_dedup

    return bench_dedup.micro()


def _rules() -> dict[str, Any]:
    from bench import bench_rules

    return bench_rules.run()


def _backtest() -> dict[str, Any]:
    from bench import bench_backtest

    return bench_backtest.run(1_000_000, 20, 20_000)


def _pipeline() -> dict[str, Any]:
    from bench import bench_pipeline

    return bench_pipeline.run()


def _sink() -> dict[str, Any]:
    from bench import bench_sink

    return bench_sink.run()


def _search() -> dict[str, Any]:
    from bench import bench_search

    return bench_search.run()


def _matching() -> dict[str, Any]:
    from bench import bench_percolation

    return bench_percolation.run()


def _notify_latency() -> dict[str, Any]:
    # Reduced here (10,000 subscriptions, 30 articles: ~75 s); the 100,000 figure
    # comes from ``python -m bench.bench_notify_latency`` alone (1-3 minutes of set-up).
    from bench import bench_notify_latency

    return bench_notify_latency.run(n_subs=10_000, n_articles=30)


def _latency() -> dict[str, Any]:
    from bench import bench_latency

    return bench_latency.run()


def _peer() -> dict[str, Any]:
    from bench import bench_peer

    return bench_peer.run()


def _scale() -> dict[str, Any]:
    from bench import bench_scale

    return bench_scale.run()


BENCHES: dict[str, Callable[[], dict[str, Any]]] = {
    "producers": _producers,
    "classifier": _classifier,
    "dedup": _dedup,
    "rules": _rules,
    "backtest": _backtest,
    "pipeline": _pipeline,
    "sink": _sink,
    "search": _search,
    "matching": _matching,
    "notify_latency": _notify_latency,
    "latency": _latency,
    "peer": _peer,
    "scale": _scale,
}

Row = tuple[str, str, str, str, str]


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.2f}" if x < 100 else f"{x:,.0f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _ratio(a: Any, b: Any) -> str:
    try:
        return f"{a / b:.3f}"
    except (TypeError, ZeroDivisionError):
        return "–"


def rows(name: str, r: dict[str, Any], every: dict[str, Any] | None = None) -> list[Row]:
    """The table rows of one benchmark; ``every``: all results of the run, for ratios that
    set one benchmark against another (news end to end vs the classifier alone)."""
    if "error" in r:
        return [(name, f"failed: {r['error']}", "", "", "")]
    out: list[Row] = []
    if name == "producers":
        for kind in ("ticks_per_s", "news_per_s"):
            v = r[kind]
            out.append(
                (
                    f"producer {kind.replace('_per_s', '')}/s",
                    _fmt(v["ours"]),
                    f"{_fmt(v['bare_default'])} (bare kafka-python)",
                    _fmt(v["ratio"]),
                    "≥ 1",
                )
            )
    elif name == "classifier":
        out.append(
            (
                "classifier articles/s, 1 core, synthetic",
                _fmt(r["synthetic"]["articles_per_s"]),
                "",
                "",
                "",
            )
        )
        if r.get("dev"):
            out.append(
                (
                    "classifier articles/s, 1 core, dev.jsonl",
                    _fmt(r["dev"]["articles_per_s"]),
                    "",
                    "",
                    "",
                )
            )
    elif name == "dedup":
        for load in ("pipeline", "distinct"):
            v = r[load]
            out.append(
                (
                    f"story clusterer µs CPU per event ({load}: {_fmt(v['events'])} events)",
                    _fmt(v["cpu_us_per_event"]),
                    "",
                    "",
                    "",
                )
            )
    elif name == "rules":
        out.append(
            (
                f"rule evaluations/s ({r['holders']} holders x {r['rules']} rules)",
                _fmt(r["evaluations_per_s"]),
                "",
                "",
                "",
            )
        )
    elif name == "backtest":
        c, f = r["columnar"], r["numpy_floor"]
        out.append(
            (
                f"backtest engine ticks/s ({_fmt(r['ticks'])} ticks x {r['holders']} holders x "
                f"{r['rules']} rules; {r['columnar_vs_scalar']}x the scalar engine)",
                _fmt(c["ticks_per_s"]),
                f"{_fmt(f['ticks_per_s'])} (numpy floor: only reads the columns)",
                _fmt(r["columnar_vs_floor"]),
                "≥ 2,000,000/s",
            )
        )
    elif name == "pipeline":
        p, b, o = r["produce"], r["bare_consumer"], r["ours"]
        out.append(("pipeline produce ticks/s (lz4)", _fmt(p["ticks_per_s"]), "", "", ""))
        out.append(
            (
                "pipeline ticks/s through treasury agent"
                + ("" if o["completed"] else " (partial)"),
                _fmt(o["ticks_per_s"]),
                f"{_fmt(b['ticks_per_s'])} (bare aiokafka consumer)",
                _ratio(o["ticks_per_s"], b["ticks_per_s"]),
                f"≥ {o['goal_ratio']}",
            )
        )
        floor = r.get("faust_floor", {}).get("ticks_per_s")
        if floor:
            out.append(
                (
                    "… same, vs a do-nothing Faust agent (Faust's own ceiling)",
                    _fmt(o["ticks_per_s"]),
                    f"{_fmt(floor)} (bare Faust agent)",
                    _ratio(o["ticks_per_s"], floor),
                    "",
                )
            )
        n = r.get("news_e2e")
        if n:
            clf = (every or {}).get("classifier", {}).get("synthetic", {}).get("articles_per_s")
            out.append(
                (
                    "news articles/s end to end (news → ES)"
                    + ("" if n["completed"] else " (partial)"),
                    _fmt(n["articles_per_s"]),
                    f"{_fmt(clf)} (classifier alone, 1 core)" if clf else "",
                    _ratio(n["articles_per_s"], clf) if clf else "",
                    "≥ 0.5",
                )
            )
    elif name == "sink":
        o, b = r["ours"], r["bare_bulk"]
        out.append(
            (
                "sink docs/s (articles → ES)" + ("" if o["completed"] else " (partial)"),
                _fmt(o["docs_per_s"]),
                f"{_fmt(b['docs_per_s'])} (bare helpers.bulk)",
                _ratio(o["docs_per_s"], b["docs_per_s"]),
                f"≥ {o['goal_ratio']}",
            )
        )
    elif name == "search":
        lat = r.get("latency_ms", r)
        out.append(
            (
                f"search latency p50 / p99 ms ({_fmt(r.get('docs', 100_000))} articles)",
                f"{_fmt(lat.get('p50'))} / {_fmt(lat.get('p99'))}",
                "",
                "",
                "",
            )
        )
    elif name == "matching":
        out.append(
            (
                f"subscription matching events/s ({_fmt(r['subscriptions'])} subscriptions, "
                f"batches of {r['batch_size']}; p99 {r['p99_match_s']} s per batch)",
                _fmt(r["events_per_s"]),
                f"{_fmt(r['brute_force_events_per_s'])} (brute force, batches of 20)",
                f"{r['speedup']}×",
                "≥ 2,000/s and ≥ 50× at 100,000",
            )
        )
    elif name == "notify_latency":
        v, w = r["latency"], r["worker_end"]
        out.append(
            (
                f"news POSTed → webhook p50 / p95 / p99 s, {_fmt(r['subscriptions'])} "
                f"subscriptions ({v['n']}/{r['articles']} articles; worker RSS "
                f"{_fmt(w['rss_mb'])} MB)",
                f"{v.get('p50_s')} / {v.get('p95_s')} / {v.get('p99_s')}",
                "",
                "",
                f"p99 < {r['goal_p99_s']} s at 100,000",
            )
        )
    elif name == "latency":
        for key, label in (("es_searchable", "searchable in ES"), ("webhook", "webhook received")):
            v = r[key]
            out.append(
                (
                    f"alert latency p50 / p95 / p99 s at {_fmt(r['rate'])} ticks/s, {label} "
                    f"({v['seen']}/{v['expected']} alerts)",
                    f"{v['p50_s']} / {v['p95_s']} / {v['p99_s']}",
                    "",
                    "",
                    f"p99 < {r['goal_p99_s']} s",
                )
            )
    elif name == "peer":
        e, o = r["elastalert"]["detection"], r["ours_es_searchable"]
        out.append(
            (
                "detection latency p50 / p99 s, same crossings (ours: searchable in ES)",
                f"{o['p50_s']} / {o['p99_s']} ({o['seen']}/{o['expected']})",
                f"{e['p50_s']} / {e['p99_s']} ({e['seen']}/{e['expected']}, "
                f"ElastAlert2 {r['elastalert']['version']})",
                _ratio(e["p50_s"], o["p50_s"]) + " (p50, peer / ours)",
                "",
            )
        )
    elif name == "scale":
        out.extend(scale_rows(r))
    return out


def _rounds(sc: dict[str, Any]) -> str:
    """The capacity rounds' ratios and the box's parallel ceiling in each, when there were
    rounds (bench_scale's alternated one- and two-worker cases)."""
    rounds = sc.get("rounds") or []
    if not rounds:
        return "one round"
    ratios = ", ".join(_fmt(x["ratio_per_busiest_worker_cpu"]) for x in rounds)
    ceiling = ", ".join(_fmt(x["box_parallel_ceiling"]) for x in rounds)
    return f"median of {len(rounds)} alternated rounds: {ratios}; box ceiling {ceiling}"


def scale_rows(r: dict[str, Any]) -> list[Row]:
    """Rows for bench_scale: whatever of its two parts ran."""
    out: list[Row] = []
    sc = r.get("scale")
    if sc:
        one, two, join = sc["one_worker"], sc["two_workers"], sc["second_joins_mid_stream"]
        exact = all(c["alerts"]["exact"] for c in (one, two, join))
        out.append(
            (
                f"ticks/s, two workers vs one ({sc['ticks']:,} ticks, "
                f"{r['partitions']} partitions; alerts exact in all 3 cases incl. a "
                f"mid-stream join: {'yes' if exact else 'NO'}; topic re-sends at the "
                f"join: {join['alerts']['topic_duplicates']})",
                _fmt(two["ticks_per_s"]),
                f"{_fmt(one['ticks_per_s'])} (one worker)",
                _ratio(two["ticks_per_s"], one["ticks_per_s"]),
                "no alert lost or duplicated",
            )
        )
        out.append(
            (
                "… per CPU-second of the busiest worker (the rate each could reach on a core "
                "of its own; capacity cases drain backlogs, rebalanced: "
                f"{'yes' if one.get('rebalanced') or two.get('rebalanced') else 'no'}; "
                f"{_rounds(sc)})",
                _fmt(two["ticks_per_busiest_worker_cpu_s"]),
                f"{_fmt(one['ticks_per_busiest_worker_cpu_s'])} (one worker)",
                _fmt(sc["ratio_per_busiest_worker_cpu"]),
                "≥ 1.8",
            )
        )
    rss = r.get("rss")
    if rss:
        out.append(
            (
                f"worker RSS MB over {rss['ticks']:,} ticks: after warm-up / max "
                "(slope MB per 100k ticks, 2nd half)",
                f"{_fmt(rss['rss_warm_mb'])} / {_fmt(rss['rss_max_mb'])} "
                f"({rss['slope_mb_per_100k_second_half']})",
                "",
                "",
                "flat",
            )
        )
    return out


def main() -> int:
    results: dict[str, Any] = {"started": datetime.now(UTC).isoformat()}
    failed = False
    for name, fn in BENCHES.items():
        print(f"running {name} …", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others
            failed = True
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            results[name] = {"error": reason, "traceback": traceback.format_exc()}
        results[name]["bench_seconds"] = round(time.perf_counter() - t0, 1)
    table = ["| figure | ours | limit / peer | ratio | goal |", "|---|---|---|---|---|"]
    for name in BENCHES:
        try:
            table += ["| " + " | ".join(row) + " |" for row in rows(name, results[name], results)]
        except (KeyError, TypeError) as exc:
            failed = True
            table.append(f"| {name} | failed: unexpected result ({exc!r}) | | | |")
    print("\n".join(table))
    if "pipeline" in results and "method" in results["pipeline"]:
        print(f"\nPipeline method: {results['pipeline']['method']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nJSON: {RESULTS / 'latest.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
