"""InputPositions: replays are recognised, holes are rewound, real holes are accepted."""

from __future__ import annotations

from streams.positions import MAX_REWINDS, InputPositions


def test_first_offset_is_accepted_then_order_is_enforced() -> None:
    p = InputPositions()
    assert p.check(0, 40) == "apply"
    p.applied(0, 40)
    assert p.check(0, 41) == "apply"
    assert p.check(0, 39) == "seen"
    assert p.check(0, 40) == "seen"


def test_a_jump_is_a_hole_until_it_has_been_rewound_enough() -> None:
    p = InputPositions({1: 100})
    assert [p.check(1, 118) for _ in range(MAX_REWINDS)] == ["hole"] * MAX_REWINDS
    assert p.check(1, 118) == "apply"  # nothing between after MAX_REWINDS seeks: a real hole
    assert p.holes_accepted == 1


def test_partitions_are_independent_and_reset_replaces_expectations() -> None:
    p = InputPositions({0: 5, 1: 7})
    assert p.check(0, 5) == "apply"
    assert p.check(1, 5) == "seen"
    p.reset({1: 3})
    assert p.check(0, 99) == "apply"  # no expectation left for partition 0
    assert p.check(1, 4) == "hole"
