"""Elasticsearch stops for 60 s mid-stream while the producers keep sending: the worker rides
it out, the sinks back off and catch up, nothing is lost or doubled, and memory stays bounded.

This test stops the Elasticsearch of the stack the session started; run it on a stack of its
own (e.g. CPWATCH_HOME, CPWATCH_KAFKA_BOOTSTRAP and CPWATCH_ES_URL on other ports), never on
one other people's tests share. tests/integration/test_sink.py has the short (30 s, sink-only)
version of this outage.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cpwatch import topics as t
from cpwatch.records import DeadLetter
from cpwatch.settings import Settings
from producers.kafka import Producer
from tests.conftest import EXTERNAL, free_port, wait_for
from tests.faults.conftest import (
    HOLDINGS,
    Worker,
    articles,
    es_count,
    es_ids,
    expected_alerts,
    read_topic,
    send_holdings,
    ticks,
    with_rules,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SEED = 20251127
N_TICKS = 20_000
N_ARTICLES = 2_000
CHUNKS = 100
PACE_S = 1.3  # one chunk per PACE_S: production lasts ~130 s
STOP_AFTER_S = 25.0  # of production, so the sinks are busy when Elasticsearch goes
OUTAGE_S = 60.0  # from "process gone" to "start it again"
CATCH_UP_S = 120.0
# Memory bound. A sink takes a batch of 1,000 and awaits Elasticsearch before the next, so a
# blocked sink holds one batch; in front of it Faust buffers at most stream_buffer_maxsize
# (16,384, runtime/faust_app.py) events per channel before it stops fetching those partitions.
# Measured here ~1.1 KiB of RSS per buffered valuation (~300 B of JSON plus Faust's
# Message/Event objects): one full buffer ~18 MiB; articles (~3 KB, <= 1,000 arrive during
# the outage) add < 5 MiB; catch-up (bulk bodies, responses) a few more. 64 MiB leaves ~2x.
# At this volume the outage brings ~18k valuations, about one buffer: the RSS bound is a
# sanity bound; "taken but not indexed <= one batch" below checks the back pressure itself.
RSS_HEADROOM_MB = 64.0
MAX_UNAVAILABLE_PER_SINK = 20  # backoff 1, 2, 4 ... 30 s (jittered): ~10 tries in ~90 s


Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]
SINKS = ("articles", "events", "alerts", "treasury-valuations")
BATCH = 1_000  # sinks/agents.py


class RssSampler(threading.Thread):
    """VmRSS of one process every ``every`` seconds, as (monotonic time, MiB)."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.every):
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.samples.append((time.monotonic(), int(line.split()[1]) / 1024))
            except OSError:
                return  # the process is gone: the liveness assertions report it

    def between(self, t0: float, t1: float) -> list[float]:
        return [mib for at, mib in self.samples if t0 <= at <= t1]


def scrape(port: int) -> Metrics:
    """The worker's /metrics as {(sample name, labels): value}; empty when it does not answer."""
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
            text = resp.read().decode()
    except OSError:
        return {}
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def series(m: Metrics, name: str, key: str, **match: str) -> dict[str, float]:
    """One metric's samples whose labels include ``match``, summed by the label ``key``."""
    out: dict[str, float] = {}
    for (sample, labels), v in m.items():
        lab = dict(labels)
        if sample == name and all(lab.get(k) == x for k, x in match.items()):
            out[lab[key]] = out.get(lab[key], 0.0) + v
    return out


def running(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def es_down(settings: Settings) -> bool:
    try:
        urllib.request.urlopen(settings.es_url, timeout=2)  # noqa: S310 - loopback
    except OSError:
        return True
    return False


def test_es_outage_loses_nothing_and_bounds_memory(
    kafka_settings: Settings, tmp_path: Path, restartable_worker: Worker
) -> None:
    if EXTERNAL:
        pytest.fail("this test stops Elasticsearch: it needs a stack the session started itself")
    from deploy.stack import Stack

    began = time.monotonic()
    s = with_rules(kafka_settings, tmp_path).model_copy(update={"metrics_port": free_port()})
    w = restartable_worker
    w.settings = s
    tick_list, news = ticks(N_TICKS, SEED), articles(N_ARTICLES, SEED)
    expected = {a.fingerprint for a in expected_alerts(s, tick_list)}
    assert len(expected) > 20

    send_holdings(s)
    w.start()
    assert w.proc is not None
    rss = RssSampler(w.proc.pid)
    rss.start()

    sent_at: list[float] = []  # monotonic time each chunk was acknowledged by Kafka
    done, errors = threading.Event(), []

    def produce() -> None:
        """Chunk by chunk on a fixed schedule, whatever Elasticsearch is doing."""
        per_tick, per_news = N_TICKS // CHUNKS, N_ARTICLES // CHUNKS
        t0 = time.monotonic()
        try:
            with Producer(s, client_id="es-outage-producer") as p:
                for c in range(CHUNKS):
                    time.sleep(max(0.0, t0 + c * PACE_S - time.monotonic()))
                    for k in tick_list[c * per_tick : (c + 1) * per_tick]:
                        p.send(t.PRICE_TICKS, k.key, k)
                    for a in news[c * per_news : (c + 1) * per_news]:
                        p.send(t.NEWS, a.id, a)
                    p.flush(timeout=30)
                    sent_at.append(time.monotonic())
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            done.set()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    stack = Stack(s)
    time.sleep(STOP_AFTER_S)
    before = scrape(s.metrics_port)
    indexed_before = es_count(s, "articles")
    es_pid = int(stack.es.pid_file.read_text())
    stopping_at = time.monotonic()
    stack.stop("elasticsearch")
    stop_returned_at = time.monotonic()
    try:
        # Elasticsearch deletes its pid file as its shutdown begins, so stop() can return
        # while the JVM still runs: the outage starts when the process is gone.
        wait_for(lambda: not running(es_pid), timeout=60)
        stopped_at = time.monotonic()
        assert es_down(s), "Elasticsearch still answers after stop"
        time.sleep(OUTAGE_S)
        assert w.alive(), w.tail()
        during = scrape(s.metrics_port)
        chunks_in_outage = sum(1 for at in sent_at if stopped_at <= at)
    finally:
        restart_at = time.monotonic()
        stack.up()
    back_at = time.monotonic()

    assert done.wait(timeout=CHUNKS * PACE_S + 60), "producer did not finish"
    assert not errors, errors
    produced_until = sent_at[-1]

    n_valuations = len({h.holder for h in HOLDINGS}) * N_TICKS  # one per holder and minute

    def everything_indexed() -> bool:
        return (
            es_count(s, "alerts") >= len(expected)
            and es_count(s, "articles") >= N_ARTICLES
            and es_count(s, "treasury-valuations") >= n_valuations
        )

    try:
        wait_for(everything_indexed, timeout=CATCH_UP_S, interval=1.0)
    finally:
        caught_up_at = time.monotonic()
        rss.halt.set()
        print(
            f"\nES stop at +{stopping_at - began:.0f}s"
            f" (stop() returned after {stop_returned_at - stopping_at:.1f}s,"
            f" process gone after {stopped_at - stopping_at:.1f}s),"
            f" restart at +{restart_at - began:.0f}s, serving at +{back_at - began:.0f}s"
            f" (start took {back_at - restart_at:.1f}s); production +{sent_at[0] - began:.0f}s"
            f"..+{produced_until - began:.0f}s, {chunks_in_outage}/{CHUNKS} chunks sent while"
            f" ES was down; articles indexed before the stop {indexed_before}"
        )
        print(
            f"caught up {caught_up_at - back_at:.1f}s after ES served again"
            f" ({caught_up_at - produced_until:.1f}s after the last chunk);"
            f" alerts {es_count(s, 'alerts')}/{len(expected)}"
            f" articles {es_count(s, 'articles')}/{N_ARTICLES}"
            f" valuations {es_count(s, 'treasury-valuations')}/{n_valuations}"
        )
    rss.join(timeout=5)
    time.sleep(3)  # anything late (a duplicate, a crash) would show now
    after = scrape(s.metrics_port)
    assert w.alive(), w.tail()

    # The outage spanned production: chunks went out before, during and after it.
    assert sent_at[0] < stopping_at
    assert chunks_in_outage >= 0.8 * OUTAGE_S / PACE_S, chunks_in_outage
    assert produced_until > restart_at, "production ended before Elasticsearch restarted"

    # Memory: baseline = the 10 s before the stop; peak = from the stop until caught up.
    baseline = max(rss.between(stopping_at - 10, stopping_at))
    outage = rss.between(stopping_at, back_at)
    catch_up = rss.between(back_at, caught_up_at)
    peak = max(outage + catch_up)
    print(
        f"worker RSS MiB: baseline {baseline:.1f}, peak during outage {max(outage):.1f},"
        f" during catch-up {max(catch_up or [0.0]):.1f}, end {rss.samples[-1][1]:.1f};"
        f" growth {peak - baseline:+.1f} (bound +{RSS_HEADROOM_MB:.0f}), {len(rss.samples)} samples"
    )
    assert peak <= baseline + RSS_HEADROOM_MB

    # Back pressure: a blocked sink holds only the batch it took (taken - indexed <= BATCH);
    # the rest of its input waits in Kafka or Faust's bounded buffer (consumer lag).
    assert before and during and after, "the worker's /metrics did not answer"
    taken = series(during, "cpwatch_records_in_total", "stage")
    indexed = series(during, "cpwatch_records_out_total", "stage")
    held = {i: taken.get(f"sink-{i}", 0.0) - indexed.get(f"sink-{i}", 0.0) for i in SINKS}
    waiting = {
        i: sum(series(during, "cpwatch_consumer_lag", "partition", topic=i).values())
        for i in (t.ARTICLES, t.TREASURY_VALUATIONS)
    }
    print(
        f"end of outage: taken but not indexed by sink {held}; consumer lag {waiting};"
        f" RSS growth {max(outage) - baseline:+.1f} MiB"
    )
    assert all(0 <= n <= BATCH for n in held.values()), held
    assert waiting[t.TREASURY_VALUATIONS] > 2 * BATCH, waiting

    # The sinks noticed, backed off (a few tries, not a busy loop) and the log says so.
    def bulk_errors(m: Metrics, kind: str) -> dict[str, float]:
        return series(m, "cpwatch_es_bulk_errors_total", "index", kind=kind)

    unavailable = bulk_errors(during, "unavailable")
    new = {i: v - bulk_errors(before, "unavailable").get(i, 0.0) for i, v in unavailable.items()}
    log_lines = w.log_path.read_text(errors="replace")
    warnings = log_lines.count("elasticsearch unavailable")
    print(
        f"ES bulk 'unavailable' during the outage by index {new};"
        f" at the end {bulk_errors(after, 'unavailable')},"
        f" rejected {bulk_errors(after, 'rejected')},"
        f" retried {bulk_errors(after, 'retried')}; {warnings} 'unavailable' log lines"
    )
    assert new.get("articles", 0) >= 2 and new.get("treasury-valuations", 0) >= 2, new
    assert max(new.values()) <= MAX_UNAVAILABLE_PER_SINK, new
    assert warnings >= sum(new.values())
    assert not bulk_errors(after, "rejected"), "documents rejected for good"
    # A crashed agent is logged ("Crashed reason=...") while the process lives on.
    assert "crashed" not in log_lines.lower(), w.tail()

    # Nothing lost, nothing doubled, nothing dead-lettered.
    dead = [DeadLetter.parse(v) for v in read_topic(s, t.DEAD_LETTER) if v is not None]
    assert not dead, [(d.stage, d.reason[:200]) for d in dead[:5]]
    article_ids = es_ids(s, "articles")
    assert len(article_ids) == len(set(article_ids)) == N_ARTICLES
    assert set(article_ids) == {a.id for a in news}
    alert_ids = es_ids(s, "alerts")
    assert len(alert_ids) == len(expected)
    assert set(alert_ids) == expected
    valuations = {json.loads(v)["id"] for v in read_topic(s, t.TREASURY_VALUATIONS) if v}
    valuation_ids = es_ids(s, "treasury-valuations")
    print(
        f"alerts {len(alert_ids)} = backtest; articles {len(article_ids)} unique;"
        f" valuations {len(valuation_ids)} in ES / {len(valuations)} distinct on the topic;"
        f" duration {time.monotonic() - began:.0f}s"
    )
    assert len(valuation_ids) == len(valuations) == n_valuations
    assert set(valuation_ids) == valuations


def test_worker_started_during_an_outage_waits_for_elasticsearch(
    kafka_settings: Settings, restartable_worker: Worker
) -> None:
    """A worker restarted while Elasticsearch is down (a kill -9 fault run met this) waits
    for it instead of exiting, then indexes what arrived meanwhile."""
    if EXTERNAL:
        pytest.fail("this test stops Elasticsearch: it needs a stack the session started itself")
    from deploy.stack import Stack

    s, w = kafka_settings, restartable_worker
    stack = Stack(s)
    es_pid = int(stack.es.pid_file.read_text())
    stack.stop("elasticsearch")
    try:
        wait_for(lambda: not running(es_pid), timeout=60)
        w.start()
        news = articles(50, SEED + 1)
        with Producer(s) as p:
            for a in news:
                p.send(t.NEWS, a.id, a)
            p.flush()
        wait_for(lambda: "Elasticsearch not reachable yet" in w.tail(), timeout=60)
        time.sleep(10)
        assert w.alive(), w.tail()
    finally:
        stack.up()
    wait_for(lambda: es_count(s, "articles") >= len(news), timeout=180, interval=1.0)
    assert sorted(es_ids(s, "articles")) == sorted(a.id for a in news)
    assert w.alive(), w.tail()
