"""Token buckets with an injected clock: burst, refill, Retry-After, keys apart, bounded keys."""

from __future__ import annotations

from api.ratelimit import Buckets, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    b = Buckets(rate=2.0, burst=3, clock=clock)
    assert [b.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = b.take("k")
    assert wait == 0.5  # one token per 1/rate seconds
    clock.now += 0.25
    assert b.take("k") == 0.25, "half a token regained: the wait halves"
    clock.now += 0.25
    assert b.take("k") == 0.0
    clock.now += 100
    assert [b.take("k") for _ in range(4)][-1] > 0, "refill stops at the burst"


def test_keys_have_their_own_buckets() -> None:
    b = Buckets(rate=1.0, burst=1, clock=Clock())
    assert b.take("a") == 0.0 and b.take("a") > 0
    assert b.take("b") == 0.0


def test_zero_rate_disables_and_clock_stepping_back_mints_nothing() -> None:
    assert all(Buckets(0, 1, clock=Clock()).take("k") == 0.0 for _ in range(100))
    clock = Clock()
    b = Buckets(rate=1.0, burst=1, clock=clock)
    assert b.take("k") == 0.0
    clock.now -= 50
    assert b.take("k") > 0
    clock.now += 50
    assert b.take("k") > 0, "time spent before the step back is not counted twice"


def test_keys_are_bounded_least_recently_used_first() -> None:
    b = Buckets(rate=1.0, burst=1, clock=Clock(), max_keys=2)
    b.take("a"), b.take("b"), b.take("a"), b.take("c")  # "b" is the least recently used
    assert b.take("a") > 0, "a kept its empty bucket"
    assert b.take("b") == 0.0, "b was forgotten: a full bucket again"


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert [retry_after(w) for w in (0.01, 1.0, 1.2)] == ["1", "1", "2"]
