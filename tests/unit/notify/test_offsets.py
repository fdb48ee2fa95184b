"""OffsetTracker: commit the lowest offset whose predecessors all finished, per partition."""

from __future__ import annotations

import random

from notify.offsets import OffsetTracker


def test_out_of_order_finishes_commit_only_the_finished_prefix() -> None:
    tr: OffsetTracker[str] = OffsetTracker()
    for off in range(10, 15):
        tr.start("p0", off)
    assert tr.committable() == {"p0": 10}  # nothing finished: the first unfinished offset
    tr.committed({"p0": 10})
    for off in (12, 14, 13):
        tr.finish("p0", off)
    assert tr.committable() == {}  # 10 still in flight: no progress
    tr.finish("p0", 10)
    assert tr.committable() == {"p0": 11}
    tr.committed({"p0": 11})
    tr.finish("p0", 11)
    assert tr.committable() == {"p0": 15} and tr.in_flight() == 0


def test_partitions_are_independent_and_gaps_are_fine() -> None:
    tr: OffsetTracker[int] = OffsetTracker()
    tr.start(0, 5)
    tr.start(1, 100)
    tr.start(1, 107)  # compaction or transaction markers leave gaps
    tr.finish(1, 107)
    tr.finish(1, 100)
    assert tr.committable() == {0: 5, 1: 108}
    assert tr.window() == 1  # partition 0 holds one record back


def test_forget_drops_revoked_partitions_and_ignores_their_late_finishes() -> None:
    tr: OffsetTracker[str] = OffsetTracker()
    tr.start("a", 0)
    tr.start("b", 0)
    tr.forget(["a"])
    tr.finish("a", 0)
    tr.finish("b", 0)
    assert tr.committable() == {"b": 1}


def test_never_commits_an_unfinished_offset_random_order() -> None:
    rng = random.Random(7)
    tr: OffsetTracker[str] = OffsetTracker()
    offsets = list(range(1000))
    for off in offsets:
        tr.start("p", off)
    order = offsets[:]
    rng.shuffle(order)
    done: set[int] = set()
    last = 0
    for off in order:
        tr.finish("p", off)
        done.add(off)
        c = tr.committable().get("p")
        if c is not None:
            assert all(o in done for o in range(c)) and c not in done or c == 1000
            assert c >= last
            last = c
            tr.committed({"p": c})
    assert last == 1000
