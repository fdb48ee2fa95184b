"""ElastAlert2 as a peer: the same threshold crossings, detected by our worker and by ElastAlert2.

    .venv/bin/python -m bench.bench_peer [--seconds 60] [--rate 1000] [--holders 30] [--python PY]

ElastAlert2 runs from its own venv (``~/.cache/cpwatch/elastalert-venv``, created on first use
with a Python >= 3.12, which elastalert2 2.31.0 requires) as a subprocess on the namespace of
``bench_latency.Harness``, which drives the ticks and measures our side.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.bench_latency import (
    HOLDERS,
    RATE,
    SECONDS,
    THRESHOLD_USD,
    WARM,
    Harness,
    pct,
    summary,
)
from cpwatch.settings import DEFAULT_HOME

ELASTALERT_VERSION = "2.31.0"
VENV = DEFAULT_HOME / "elastalert-venv"
RUN_EVERY_S = 1  # ElastAlert's scheduler takes whole seconds in practice; 1 s is its fastest
BUFFER_S = 10
METHOD = (
    "Ticks, holders and rule as in bench_latency (threshold $1B, one up-crossing per holder). "
    "ElastAlert2 rule over our treasury-valuations alias (docs: holder, ts, value_usd; one per "
    "holder and minute, overwritten by each newer valuation): type 'any', filter value_usd >= "
    "threshold, query_key holder, realert 1 h, run_every 1 s, buffer_time 10 s, alerter post2 "
    "to a receiver on 127.0.0.1; its first POST per holder is its detection of that holder's "
    "up-crossing. ElastAlert has no 'crosses' rule type (it keeps no per-key side state), so a "
    "range filter plus realert per holder is the faithful equivalent for a value that starts "
    "below and crosses up once; down-crossings are not compared. Latency = arrival time - send "
    "time of the crossing tick. ElastAlert only reads Elasticsearch, so its latency includes "
    "our pipeline writing the valuation (treasury agent -> Kafka -> ES sink, 0.5 s batches) and "
    "the 1 s index refresh, then its own polling: ElastAlert2 schedules each rule with "
    "APScheduler jitter=5 (hard-coded), so with run_every 1 s its runs come every 1 s + "
    "U(0, 5) s (rule_runs: observed from its writeback _status docs). Ours is shown to ES "
    "(alert searchable) and to our webhook. A warm-up crossing is awaited by ElastAlert too "
    "before the run. ElastAlert's ES client is elasticsearch-py 7.10.1 (its pin); it reads the "
    "server version from GET /, which this integ-test-zip answers 405, so ES_VERSION is set to "
    "the version the nodes API reports."
)


def _python_312(explicit: str | None) -> str:
    """A Python >= 3.12 for the ElastAlert venv: --python, else python3.13/3.12, else pyenv's."""
    home = Path.home()
    found = [explicit, shutil.which("python3.13"), shutil.which("python3.12")]
    found += sorted(glob.glob(str(home / ".pyenv/versions/3.1[2-9]*/bin/python3")), reverse=True)
    for py in filter(None, found):
        ok = subprocess.run(
            [py, "-c", "import sys; sys.exit(sys.version_info < (3, 12))"], capture_output=True
        )
        if ok.returncode == 0:
            return py
    raise RuntimeError(f"elastalert2 {ELASTALERT_VERSION} needs Python >= 3.12; pass --python")


def ensure_elastalert(venv: Path = VENV, python: str | None = None) -> Path:
    """The venv's python with elastalert2 at the pinned version, installed from PyPI if needed."""
    py = venv / "bin" / "python"
    probe = "import importlib.metadata as m; print(m.version('elastalert2'))"
    if py.exists():
        have = subprocess.run([py, "-c", probe], capture_output=True, text=True).stdout.strip()
        if have == ELASTALERT_VERSION:
            return py
    else:
        subprocess.run([_python_312(python), "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [py, "-m", "pip", "install", "-q", f"elastalert2=={ELASTALERT_VERSION}"], check=True
    )
    return py


def _es_version(h: Harness) -> str:
    # The integ-test-zip lacks the rest-root module: GET / answers 405, so ElastAlert cannot
    # read the version itself. Ask the nodes API and hand it over through its ES_VERSION.
    from elasticsearch import Elasticsearch

    es = Elasticsearch(**h.settings.es_client_kwargs())
    nodes = es.nodes.info(node_id="_local", filter_path="nodes.*.version")["nodes"]
    es.close()
    return str(next(iter(nodes.values()))["version"])


class ElastAlert:
    """Config, rule, writeback indices and the ``python -m elastalert.elastalert`` process."""

    def __init__(self, h: Harness, python: Path) -> None:
        self.h, self.python = h, python
        self.dir = h.tmp / "elastalert"
        (self.dir / "rules").mkdir(parents=True)
        self.log_path = self.dir / "elastalert.log"
        self.proc: subprocess.Popen[bytes] | None = None
        url = urlsplit(h.settings.es_url)
        self.writeback = f"{h.settings.es_index_prefix}-elastalert"
        config = {
            "rules_folder": str(self.dir / "rules"),
            "run_every": {"seconds": RUN_EVERY_S},
            "buffer_time": {"seconds": BUFFER_S},
            "es_host": url.hostname,
            "es_port": url.port or 9200,
            "use_ssl": url.scheme == "https",
            # inside the namespace's index prefix, so drop_namespace removes it too
            "writeback_index": self.writeback,
            "alert_time_limit": {"minutes": 5},
        }
        rule = {
            "name": "bench-level-up",
            "type": "any",
            "index": h.settings.index("treasury-valuations"),
            "timestamp_field": "ts",
            "filter": [{"range": {"value_usd": {"gte": THRESHOLD_USD}}}],
            "query_key": "holder",
            "realert": {"hours": 1},
            "alert": ["post2"],
            "http_post2_url": h.receiver.url("/elastalert"),
            "http_post2_all_values": True,
        }
        self.config = self.dir / "config.yaml"
        self.config.write_text(json.dumps(config))  # JSON is YAML
        (self.dir / "rules" / "bench-level-up.yaml").write_text(json.dumps(rule))
        self.env = {**os.environ, "ES_VERSION": _es_version(h), "PYTHONUNBUFFERED": "1"}

    def start(self) -> None:
        subprocess.run(
            [self.python, "-m", "elastalert.create_index", "--config", str(self.config)],
            env=self.env,
            cwd=self.dir,
            check=True,
            capture_output=True,
        )
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "elastalert.elastalert",
                    "--config",
                    str(self.config),
                    "--verbose",
                ],
                env=self.env,
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"elastalert exited with {self.proc.returncode}: {self.log_tail()}")
        return WARM in self.first_alerts()

    def first_alerts(self) -> dict[str, float]:
        """Holder -> arrival of ElastAlert's first POST for it."""
        out: dict[str, float] = {}
        for at, doc in self.h.receiver.hits("/elastalert"):
            out.setdefault(str((doc or {}).get("holder")), at)
        return out

    def run_stats(self) -> dict[str, Any]:
        """ElastAlert's own bookkeeping (writeback ``_status``, one doc per rule run): how
        often the rule actually ran and how long each run took."""
        from elasticsearch import Elasticsearch

        es = Elasticsearch(**self.h.settings.es_client_kwargs())
        index = f"{self.writeback}_status"
        es.indices.refresh(index=index)
        hits = es.search(
            index=index,
            size=10_000,
            sort=[{"@timestamp": "asc"}],
            source=["@timestamp", "time_taken"],
        )["hits"]["hits"]
        es.close()
        ends = [datetime.fromisoformat(h["_source"]["@timestamp"]).timestamp() for h in hits]
        taken = sorted(float(h["_source"]["time_taken"]) for h in hits)
        gaps = sorted(b - a for a, b in zip(ends, ends[1:], strict=False))
        return {
            "runs": len(hits),
            "period_p50_s": round(pct(gaps, 0.5), 2) if gaps else None,
            "time_taken_p50_s": round(pct(taken, 0.5), 3) if taken else None,
            "period_max_s": round(gaps[-1], 2) if gaps else None,
            "time_taken_max_s": round(taken[-1], 3) if taken else None,
        }

    def stop(self) -> int | None:
        """SIGINT (ElastAlert's own clean shutdown), then terminate, then kill."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(sig)
        return self.proc.wait()

    def log_tail(self, n: int = 8) -> list[str]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [ln for ln in lines if "ERROR" in ln or "Traceback" in ln][-n:] or lines[-n:]


def run(
    seconds: float = SECONDS, rate: int = RATE, n_holders: int = HOLDERS, python: str | None = None
) -> dict[str, Any]:
    py = ensure_elastalert(python=python)
    result: dict[str, Any] = {
        "seconds": seconds,
        "rate": rate,
        "holders": n_holders,
        "method": METHOD,
    }
    load = os.getloadavg()[0]
    h = Harness("peer", n_holders)
    with h:
        ea = ElastAlert(h, py)
        result["elastalert"] = {
            "version": ELASTALERT_VERSION,
            "python": subprocess.run(
                [py, "--version"], capture_output=True, text=True
            ).stdout.strip(),
            "es_version_env": ea.env["ES_VERSION"],
        }
        try:
            ea.start()
            result["warm_up_s"] = round(h.warm_up(ea.ready), 1)
            result["pacing"] = h.drive(seconds, rate)
            alerts, _ = h.expected()
            ups = [a for a in alerts if a.direction == "up"]
            fps = {a.fingerprint for a in ups}
            holders = {a.holder for a in ups}

            def done() -> bool:
                return (
                    fps <= set(h.watch.seen)
                    and fps <= set(h.receiver.firing("/hook"))
                    and holders <= set(ea.first_alerts())
                )

            h.settle(done)
            firsts = ea.first_alerts()
            result["up_crossings"] = len(ups)
            result["ours_alerts_topic"] = summary(h.latencies(ups, h.kafka_watch.seen), len(ups))
            result["ours_es_searchable"] = summary(h.latencies(ups, dict(h.watch.seen)), len(ups))
            result["ours_webhook"] = summary(h.latencies(ups, h.receiver.firing("/hook")), len(ups))
            ea_lat = [firsts[a.holder] - h.sent_at[a.ts] for a in ups if a.holder in firsts]
            result["elastalert"]["detection"] = summary(ea_lat, len(ups))
            posts = h.receiver.hits("/elastalert")
            result["elastalert"]["posts"] = len(posts)
            result["elastalert"]["posts_other_holders"] = len(set(firsts) - holders - {WARM})
            result["elastalert"]["rule_runs"] = ea.run_stats()
            if result["elastalert"]["detection"]["missing"]:
                result["elastalert"]["log_tail"] = ea.log_tail()
        finally:
            result["elastalert"]["exit_code"] = ea.stop()  # before the namespace is dropped
    ours, theirs = result["ours_es_searchable"], result["elastalert"]["detection"]
    if "p50_s" in ours and "p50_s" in theirs:
        result["p50_ratio_elastalert_vs_ours_es"] = round(theirs["p50_s"] / ours["p50_s"], 2)
    result["load_avg_1m"] = {"before": round(load, 2), "after": round(os.getloadavg()[0], 2)}
    result["cleanup_problems"] = h.cleanup_problems
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--rate", type=int, default=RATE, help="ticks per second")
    parser.add_argument("--holders", type=int, default=HOLDERS, help="1 up-crossing per holder")
    parser.add_argument("--python", help="Python >= 3.12 to create the ElastAlert venv with")
    args = parser.parse_args()
    json.dump(run(args.seconds, args.rate, args.holders, args.python), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
