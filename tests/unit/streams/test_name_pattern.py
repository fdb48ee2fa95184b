"""The trie pattern finds exactly what a flat alternation of the names, longest first, finds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.name_pattern import alternation

# Few letters, so names share prefixes and contain one another, as place and body names do.
_CHARS = "abAB .'’-"
names_st = st.lists(st.text(_CHARS, min_size=1, max_size=8), min_size=1, max_size=25)


def _flat(names: list[str]) -> re.Pattern[str]:
    ordered = sorted(set(names), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, ordered)) + r")(?:['’]s)?\b")


def _spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text)]


@settings(max_examples=300, deadline=None)
@given(names=names_st, data=st.data())
def test_same_matches_as_the_flat_alternation(names: list[str], data: st.DataObject) -> None:
    # Texts made of the names themselves, glued by separators and noise, so matches overlap.
    pieces = st.one_of(st.sampled_from(names), st.text(_CHARS + "xy\n,", max_size=4))
    text = "".join(data.draw(st.lists(pieces, max_size=12)))
    trie = re.compile(r"\b(?:" + alternation(names) + r")(?:['’]s)?\b")
    assert _spans(trie, text) == _spans(_flat(names), text)


def test_longest_name_wins_and_prefixes_still_match() -> None:
    pattern = re.compile(r"\b(?:" + alternation(["El", "El Salvador", "Salvador"]) + r")\b")
    assert [m.group() for m in pattern.finditer("El Salvador, El, Salvador")] == [
        "El Salvador",
        "El",
        "Salvador",
    ]


def test_special_characters_are_literal() -> None:
    pattern = re.compile(alternation(["U.S.", "a+b"]))
    assert pattern.findall("U.S. a+b UxSx aab") == ["U.S.", "a+b"]


def test_no_names_matches_nothing_and_an_empty_name_is_refused() -> None:
    assert re.compile(alternation([])).search("anything") is None
    with pytest.raises(ValueError, match="empty name"):
        alternation(["a", ""])


def test_a_space_pattern_stands_for_each_space_of_a_name() -> None:
    pattern = re.compile(alternation(["bitcoin reserve"], space=r"[\s\-]+"))
    assert pattern.findall("a bitcoin-reserve, a bitcoin  reserve, a bitcoinreserve") == [
        "bitcoin-reserve",
        "bitcoin  reserve",
    ]
