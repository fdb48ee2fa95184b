"""The main job's own flow: `cpwatch run` on its bundled sample data raises exactly the alerts
`cpwatch backtest` prints for the same files, with or without worker crashes, and a holdings
file sent after half the prices follows the documented late-holding rules (streams/treasury.py).
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, TopicPartition

from app.supervisor import sample_file
from cpwatch import topics as t
from cpwatch.settings import Settings
from tests.conftest import ROOT, WORKER, free_port, settings_env, wait_for
from tests.faults.conftest import committed

pytestmark = pytest.mark.integration

PRICES = sample_file("btc_usd_daily.csv")
HOLDINGS = sample_file("treasuries.csv")
RULES = sample_file("rules.yaml")
Key = tuple[str, str, str, str]  # rule, holder, ts, direction


def backtest(*extra: str, prices: Path = PRICES) -> list[Key]:
    """Alerts of `cpwatch backtest` on the sample files, one key per printed line."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "backtest",
            "--prices",
            str(prices),
            "--holdings",
            str(HOLDINGS),
            "--rules",
            str(RULES),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [_key(json.loads(line)) for line in proc.stdout.splitlines() if line.strip()]


def _key(doc: dict[str, Any]) -> Key:
    return doc["rule"], doc["holder"], doc["ts"], doc["direction"]


def es_alerts(s: Settings) -> list[Key]:
    """Every alert document in Elasticsearch (one per fingerprint: the id)."""
    es = Elasticsearch(**s.es_client_kwargs())
    try:
        es.indices.refresh(index=s.index("alerts"))
        hits = es.search(index=s.index("alerts"), size=10_000)["hits"]["hits"]
    except Exception:  # noqa: BLE001 - the alias appears once the worker prepared it
        return []
    finally:
        es.close()
    return [_key(h["_source"]) for h in hits]


def end_offset(s: Settings, topic: str) -> int:
    consumer = KafkaConsumer(**s.kafka_client_kwargs())
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        return sum(consumer.end_offsets([TopicPartition(topic, p) for p in parts]).values())
    finally:
        consumer.close()


def drained(s: Settings) -> bool:
    """Every price tick routed and every re-keyed batch processed by the treasury agent."""
    internal = f"{s.topic_prefix}{s.faust_app_id}-valuation-input"
    return committed(s, t.PRICE_TICKS) == end_offset(s, s.topic(t.PRICE_TICKS)) > 0 and committed(
        s, "valuation-input", internal=True
    ) == end_offset(s, internal)


def assert_equal_once(s: Settings, expected: list[Key]) -> None:
    """ES holds the expected alerts, each once, and no more once the input is drained."""
    assert len(set(expected)) == len(expected), "the backtest repeats an alert"

    def all_processed() -> bool:
        return drained(s)

    wait_for(all_processed, timeout=300, interval=1)
    deadline = time.monotonic() + 60  # the sink may still be indexing the last batch
    got = sorted(es_alerts(s))
    while got != sorted(expected) and time.monotonic() < deadline:
        time.sleep(1)
        got = sorted(es_alerts(s))
    missing, extra = set(expected) - set(got), set(got) - set(expected)
    assert not missing and not extra, f"missing {sorted(missing)}, extra {sorted(extra)}"
    assert len(got) == len(expected)


class MainJob:
    """`cpwatch run` on fresh prefixes, its output in a log file."""

    def __init__(self, s: Settings, log: Path) -> None:
        env = settings_env(s)
        env["CPWATCH_API_PORT"] = str(free_port())
        env["CPWATCH_METRICS_PORT"] = str(free_port())
        env["CPWATCH_PRODUCER_METRICS_PORT"] = "0"
        env["COLUMNS"] = "200"  # rich wraps lines at 80 columns otherwise
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "run"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"started worker \(pid (\d+)\)", self.output())]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@pytest.fixture
def main_job(kafka_settings: Settings, tmp_path: Path) -> Iterator[MainJob]:
    job = MainJob(kafka_settings, tmp_path / "run.log")
    yield job
    job.stop()


def test_main_job_alerts_equal_the_backtest(kafka_settings: Settings, main_job: MainJob) -> None:
    expected = backtest()
    assert len(expected) >= 20, "the sample should cross many rules"
    wait_for(lambda: "prices finished" in main_job.output(), timeout=300, interval=1)
    assert_equal_once(kafka_settings, expected)
    assert main_job.proc.poll() is None, main_job.output()[-3000:]


def test_main_job_survives_two_worker_kills(kafka_settings: Settings, main_job: MainJob) -> None:
    s = kafka_settings
    expected = backtest()
    for kill in (1, 2):
        seen = len(es_alerts(s))

        def progressing(seen: int = seen, kill: int = kill) -> bool:
            return len(main_job.worker_pids()) == kill and len(es_alerts(s)) >= seen + 3

        wait_for(progressing, timeout=240, interval=0.5)
        pid = main_job.worker_pids()[-1]
        mid_stream = "prices finished" not in main_job.output()
        os.kill(pid, signal.SIGKILL)
        print(f"kill {kill}: worker {pid} at {len(es_alerts(s))} alerts, mid-stream {mid_stream}")
    wait_for(lambda: len(main_job.worker_pids()) == 3, timeout=60)
    wait_for(lambda: "prices finished" in main_job.output(), timeout=300, interval=1)
    assert_equal_once(s, expected)
    assert main_job.proc.poll() is None, main_job.output()[-3000:]
    assert main_job.output().count("restarting in") == 2


def _late_rows(last_price_day: date) -> int:
    """Sample holdings rows (with an amount) dated at or before the last price already valued."""
    with HOLDINGS.open(newline="") as fh:
        return sum(
            1
            for row in csv.DictReader(fh)
            if row["btc"].strip() and date.fromisoformat(row["as_of"]) <= last_price_day
        )


def _produce(s: Settings, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "produce", *args],
        env={**settings_env(s), "CPWATCH_PRODUCER_METRICS_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def _late_metric(port: int) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return -1.0
    m = re.search(r"^cpwatch_holdings_late_total (\S+)$", text, re.M)
    return float(m[1]) if m else -1.0


def test_holdings_after_half_the_prices_follow_the_late_rules(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    s = kafka_settings
    port = free_port()
    rows = PRICES.read_text().splitlines()
    half = (len(rows) - 1) // 2
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("\n".join(rows[: half + 1]) + "\n")
    second.write_text("\n".join([rows[0], *rows[half + 1 :]]) + "\n")
    last_day = date.fromisoformat(rows[half].split(",")[0])

    env = {**settings_env(s), "CPWATCH_METRICS_PORT": str(port)}
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            WORKER,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        _produce(s, "prices", "--csv", str(first), "--speed", "0")
        wait_for(lambda: drained(s), timeout=240, interval=1)  # half the prices valued
        _produce(s, "holdings", str(HOLDINGS))  # acknowledged before the second half is sent
        _produce(s, "prices", "--csv", str(second), "--speed", "0")

        expected = backtest("--holdings-after", str(half))
        assert expected != backtest(), "arriving late must make a difference here"
        assert_equal_once(s, expected)
        late = _late_rows(last_day)
        assert late > 10
        wait_for(lambda: _late_metric(port) == late, timeout=60)
        assert "late holding: Tesla" in (tmp_path / "worker.log").read_text(errors="replace")
        assert worker.poll() is None
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
