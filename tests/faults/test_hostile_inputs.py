"""10,000 hostile messages interleaved with valid ones on news, price-ticks and holdings: each
bad one is dead-lettered once with its stage and reason, each valid one is processed, and the
worker stays up."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from cpwatch import topics as t
from cpwatch.records import DeadLetter
from cpwatch.settings import Settings
from producers.kafka import Producer
from tests.conftest import wait_for
from tests.faults.conftest import (
    HOLDINGS,
    Worker,
    articles,
    es_count,
    es_ids,
    expected_alerts,
    read_topic,
    ticks,
    with_rules,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SEED = 4242
HOSTILE = {t.NEWS: 4_000, t.PRICE_TICKS: 4_000, t.HOLDINGS: 2_000}  # 10,000 in all
STAGE = {t.NEWS: "classify-news", t.PRICE_TICKS: "route-ticks", t.HOLDINGS: "check-holdings"}
BIG = 200_500  # characters: over every field's limit, well under Kafka's 1 MB
FAR_FUTURE = "9999-12-31T23:59:59Z"
TS = "2024-01-01T00:00:00Z"

Maker = Callable[[random.Random], bytes]


def _j(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _bomb(rng: random.Random) -> bytes:
    depth = rng.choice([33, 100, 10_000, 100_000])
    if rng.random() < 0.5:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


COMMON: list[Maker] = [
    lambda r: b"not json " + str(r.random()).encode(),
    lambda r: b'{"id": "x", "title": ',  # truncated
    lambda r: b"",
    lambda r: r.choice([b"[]", b"42", b"null", b'"a string"', b"true"]),
    lambda r: b'{"id": "\xff\xfe", "title": "\xc3\x28"}',  # invalid UTF-8
    lambda r: bytes(r.randrange(256) for _ in range(r.randrange(1, 300))),
    _bomb,
]
NEWS_BAD: list[Maker] = [
    *COMMON,
    lambda r: _j({"id": 5, "title": ["a"], "text": {}}),
    lambda r: _j({"title": "no id"}),
    lambda r: _j({"id": "no-title"}),
    lambda r: _j({"id": "big", "title": "t", "text": "x" * BIG}),
    lambda r: _j({"id": "big-title", "title": "t" * BIG}),
    lambda r: _j({"id": "naive", "title": "t", "published": "2024-01-01T00:00:00"}),
    lambda r: _j({"id": "", "title": "empty id"}),
]
TICK_BAD: list[Maker] = [
    *COMMON,
    lambda r: _j({"venue": "v", "symbol": "BTC-USD", "price": "abc", "ts": TS}),
    lambda r: _j({"venue": "v", "symbol": "BTC-USD", "price": 1.0}),
    lambda r: _j({"symbol": "BTC-USD", "price": 1.0, "ts": TS}),
    lambda r: _j({"venue": "v" * BIG, "symbol": "BTC-USD", "price": 1.0, "ts": TS}),
    lambda r: r.choice([b"NaN", b"Infinity", b"-Infinity", b"1e400"]).join(
        [b'{"venue":"v","symbol":"BTC-USD","price":', b',"ts":"' + TS.encode() + b'"}']
    ),
    lambda r: _j({"venue": "v", "symbol": "BTC-USD", "price": r.choice([-1.0, 0]), "ts": TS}),
    lambda r: _j({"venue": "v", "symbol": "BTC-USD", "price": 1.0, "size": -1, "ts": TS}),
    lambda r: _j({"venue": "v", "symbol": "BTC-USD", "price": 1.0, "ts": "2024-01-01T00:00:00"}),
    lambda r: _j({"venue": "v", "symbol": "BTC-USD", "price": 1.0, "ts": TS, "seq": -3}),
]
HOLDING_BAD: list[Maker] = [
    *COMMON,
    lambda r: _j({"holder": "H", "kind": "state", "btc": "lots", "as_of": TS}),
    lambda r: _j({"holder": "H", "btc": 1, "as_of": TS}),
    lambda r: _j({"holder": "H", "kind": "pirate", "btc": 1, "as_of": TS}),
    lambda r: _j({"holder": "H" * BIG, "kind": "state", "btc": 1, "as_of": TS}),
    lambda r: _j({"holder": "H", "kind": "state", "btc": -r.randrange(1, 10**6), "as_of": TS}),
    lambda r: r.choice([b"NaN", b"Infinity"]).join(
        [b'{"holder":"H","kind":"state","as_of":"' + TS.encode() + b'","btc":', b"}"]
    ),
    lambda r: _j({"holder": "H", "kind": "fund", "btc": 1, "as_of": TS, "country": "usa"}),
    lambda r: _j({"holder": "H", "kind": "fund", "btc": 1, "as_of": TS, "avg_cost_usd": 0}),
]
BAD = {t.NEWS: NEWS_BAD, t.PRICE_TICKS: TICK_BAD, t.HOLDINGS: HOLDING_BAD}


def _interleave(
    rng: random.Random, valid: list[tuple[str, bytes]], bad: list[tuple[str, bytes]]
) -> list[tuple[str, bytes, bool]]:
    """Bad messages at random places; valid ones keep their own order (event time)."""
    slots = sorted(rng.randrange(len(valid) + 1) for _ in bad)
    out: list[tuple[str, bytes, bool]] = []
    b = 0
    for i, (topic, value) in enumerate([*valid, ("", b"")]):
        while b < len(bad) and slots[b] == i:
            out.append((*bad[b], True))
            b += 1
        if topic:
            out.append((topic, value, False))
    return out


def test_hostile_inputs_dead_lettered(
    kafka_settings: Settings, tmp_path: Path, restartable_worker: Worker
) -> None:
    began = time.monotonic()
    s = with_rules(kafka_settings, tmp_path)
    w = restartable_worker
    w.settings = s
    rng = random.Random(SEED)
    bad = {
        topic: [(topic, rng.choice(BAD[topic])(rng)) for _ in range(n)]
        for topic, n in HOSTILE.items()
    }
    # Far-future timestamps are refused by the records (a tick dated 9999 would pin a
    # symbol's event-time clock there): they are hostile inputs like the others.
    bad[t.NEWS] += [
        (t.NEWS, _j({"id": f"future-{i}", "title": "Future article", "published": FAR_FUTURE}))
        for i in range(20)
    ]
    bad[t.PRICE_TICKS] += [
        (
            t.PRICE_TICKS,
            _j({"venue": "v", "symbol": "BTC-USD", "price": 1.0, "ts": FAR_FUTURE, "seq": i}),
        )
        for i in range(20)
    ]
    tick_list = ticks(3_000, SEED)
    news = articles(300, SEED)
    expected = {a.fingerprint for a in expected_alerts(s, tick_list)}
    assert expected

    holdings_valid = [(t.HOLDINGS, h.to_bytes()) for h in HOLDINGS]
    phase1 = _interleave(rng, holdings_valid, bad[t.HOLDINGS])
    stream_valid = [(t.PRICE_TICKS, k.to_bytes()) for k in tick_list]
    stream_valid += [(t.NEWS, a.to_bytes()) for a in news]
    stream_valid = _mix(rng, stream_valid)  # ticks keep their event order
    phase2 = _interleave(rng, stream_valid, bad[t.NEWS] + bad[t.PRICE_TICKS])

    w.start()
    with Producer(s, max_request_size=2 * 1024 * 1024) as p:
        for i, (topic, value, _) in enumerate(phase1):
            p.send(topic, _key(topic, i), value)
    with Producer(s, max_request_size=2 * 1024 * 1024) as p:
        for i, (topic, value, _) in enumerate(phase2):
            p.send(topic, _key(topic, i), value)
    total_bad = sum(len(v) for v in bad.values())

    def settled() -> bool:
        return (
            len(read_topic(s, t.DEAD_LETTER, idle_ms=1000)) >= total_bad
            and es_count(s, "articles") >= len(news)
            and es_count(s, "alerts") >= len(expected)
        )

    try:
        wait_for(settled, timeout=240, interval=2.0)
    finally:
        print(f"dead letters {len(read_topic(s, t.DEAD_LETTER, idle_ms=1000))}/{total_bad}")
        print(f"articles {es_count(s, 'articles')}/{len(news)}")
        print(f"alerts {es_count(s, 'alerts')}/{len(expected)} alive={w.alive()}")
    time.sleep(3)
    assert w.alive(), w.tail()

    letters = [_letter(v) for v in read_topic(s, t.DEAD_LETTER) if v is not None]
    by_stage = Counter(d.stage for d in letters)
    took = time.monotonic() - began
    print(f"dead letters by stage {dict(by_stage)}; duration {took:.0f}s")
    assert all(d.reason and d.stage for d in letters)
    assert by_stage == Counter({STAGE[topic]: len(bad[topic]) for topic in HOSTILE})
    assert {d.topic for d in letters} == {s.topic(topic) for topic in HOSTILE}
    assert set(es_ids(s, "articles")) == {a.id for a in news}
    assert set(es_ids(s, "alerts")) == expected


def _letter(value: bytes) -> DeadLetter:
    return DeadLetter.parse(value)


def _key(topic: str, i: int) -> str:
    # Every tick under one key, as a venue's producer would: one partition keeps event order.
    return "replay:BTC-USD" if topic == t.PRICE_TICKS else f"k{i % 7}"


def _mix(rng: random.Random, items: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Riffle the ticks (in order) with the news, so both topics flow at once."""
    ticks_ = [i for i in items if i[0] == t.PRICE_TICKS]
    other = [i for i in items if i[0] != t.PRICE_TICKS]
    out: list[tuple[str, bytes]] = []
    a = b = 0
    while a < len(ticks_) or b < len(other):
        left_a, left_b = len(ticks_) - a, len(other) - b
        if left_b == 0 or (left_a and rng.random() < left_a / (left_a + left_b)):
            out.append(ticks_[a])
            a += 1
        else:
            out.append(other[b])
            b += 1
    return out


# Found by this test: ``Record.parse(None)`` raised ``TypeError``, which route-ticks and
# route-holdings did not catch; Faust restarted the crashed agent, the null record went without
# a dead letter, and the valid ticks of its batch were acked but never re-keyed (0 of 3 alerts).
# ``Record.parse`` now turns a null value into a ``RecordError``.
def test_null_values_dead_lettered(
    kafka_settings: Settings, tmp_path: Path, restartable_worker: Worker
) -> None:
    """A record with a null value (a tombstone) is dead-lettered like any other unusable
    message, and the valid messages around it still flow."""
    from kafka import KafkaProducer

    began = time.monotonic()
    s = with_rules(kafka_settings, tmp_path)
    w = restartable_worker
    w.settings = s
    news = articles(20, SEED)
    tick_list = ticks(1_500, SEED)
    expected = {a.fingerprint for a in expected_alerts(s, tick_list)}
    w.start()
    raw = KafkaProducer(**s.kafka_client_kwargs(), linger_ms=200, batch_size=1 << 20)

    def send(topic: str, key: str, value: bytes | None) -> None:
        raw.send(s.topic(topic), key=key.encode(), value=value)

    for h in HOLDINGS:
        send(t.HOLDINGS, "null", None)
        send(t.HOLDINGS, h.key, h.to_bytes())
    for i, a in enumerate(news):
        if i % 4 == 0:
            send(t.NEWS, "null", None)
        send(t.NEWS, a.id, a.to_bytes())
    raw.flush()
    for i, k in enumerate(tick_list):  # one partition; nulls inside the agent's batches
        if i % 300 == 150:
            send(t.PRICE_TICKS, k.key, None)
        send(t.PRICE_TICKS, k.key, k.to_bytes())
    raw.flush()
    raw.close()
    nulls = {t.HOLDINGS: len(HOLDINGS), t.NEWS: len(news[::4]), t.PRICE_TICKS: 5}

    def settled() -> bool:
        return es_count(s, "articles") >= len(news) and es_count(s, "alerts") >= len(expected)

    try:
        wait_for(settled, timeout=90, interval=2.0)
    finally:
        letters = [_letter(v) for v in read_topic(s, t.DEAD_LETTER) if v is not None]
        got = set(es_ids(s, "alerts"))
        print(f"null values: dead letters {dict(Counter(d.stage for d in letters))}")
        print(f"alerts {len(got)}/{len(expected)} missing {len(expected - got)} alive={w.alive()}")
        print(f"agent crashes: {w.tail(10**7).count('Crashed reason=TypeError')}")
        print(f"duration {time.monotonic() - began:.0f}s")
    assert w.alive(), w.tail()
    assert got == expected
    assert Counter(d.stage for d in letters) == Counter({STAGE[x]: n for x, n in nulls.items()})
