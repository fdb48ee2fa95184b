"""Unit tests of near-duplicate story grouping (synthetic stories written for these tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from streams.dedup import StoryClusterer, band_keys, signature

T0 = datetime(2025, 5, 1, 12, tzinfo=UTC)

STORY_A = (
    "Pakistan signs crypto pact with El Salvador",
    "Pakistan's crypto council signed a letter of intent with El Salvador's Bitcoin office on "
    "Tuesday, officials said. The agreement covers bitcoin adoption in the public sector and "
    "sharing of regulatory know-how. The IMF has voiced concern over Pakistan's plan to use "
    "surplus electricity for bitcoin mining.",
)
STORY_A_REWORDED = (
    "El Salvador and Pakistan sign bitcoin cooperation deal",
    "Pakistan's crypto council has signed a letter of intent with the Bitcoin office of El "
    "Salvador, officials said on Tuesday. The deal covers bitcoin adoption in the public sector "
    "and the sharing of regulatory know-how. The International Monetary Fund has raised concerns "
    "about Pakistan's plan to use surplus electricity for mining bitcoin.",
)
STORY_B = (
    "Kenya proposes tax on crypto transfers",
    "Kenya's treasury proposed a 3% tax on the transfer of digital assets, officials said on "
    "Tuesday. The tax would be collected by exchanges and covers bitcoin and other crypto assets.",
)
STORY_C = (
    "State Bank of Pakistan keeps rate unchanged",
    "The State Bank of Pakistan kept its policy rate unchanged on Monday, citing easing "
    "inflation. Officials said the IMF programme remains on track.",
)


def test_reworded_story_from_another_outlet_joins_the_cluster() -> None:
    sc = StoryClusterer()
    assert sc.assign("a1", *STORY_A, T0) == ("a1", True, ["a1"])
    cid, is_new, members = sc.assign("a2", *STORY_A_REWORDED, T0 + timedelta(hours=3))
    assert (cid, is_new, members) == ("a1", False, ["a1", "a2"])


def test_different_stories_get_different_clusters() -> None:
    sc = StoryClusterer()
    ids = [sc.assign(f"x{i}", *story, T0)[0] for i, story in enumerate((STORY_A, STORY_B, STORY_C))]
    assert ids == ["x0", "x1", "x2"]


def test_outside_window_starts_a_new_cluster() -> None:
    sc = StoryClusterer(window=timedelta(days=1))
    sc.assign("a1", *STORY_A, T0)
    cid, is_new, _ = sc.assign("a2", *STORY_A_REWORDED, T0 + timedelta(days=3))
    assert (cid, is_new) == ("a2", True)
    assert len(sc) == 1  # the expired entry was evicted


def test_replay_keeps_cluster() -> None:
    sc = StoryClusterer()
    sc.assign("a1", *STORY_A, T0)
    sc.assign("a2", *STORY_A_REWORDED, T0)
    assert sc.assign("a2", *STORY_A_REWORDED, T0) == ("a1", False, ["a1", "a2"])


def test_state_is_bounded_by_max_entries() -> None:
    sc = StoryClusterer(max_entries=3)
    for i in range(10):
        sc.assign(f"n{i}", f"Story number {i} on topic {i * 7}", f"unique words {i} {i * i} w{i}")
    assert len(sc) == 3
    assert len(sc.to_dict()["entries"]) == 3


def test_round_trip_through_dict_and_json() -> None:
    sc = StoryClusterer(max_entries=50)
    sc.assign("a1", *STORY_A, T0)
    sc.assign("b1", *STORY_B, None)
    data = json.loads(json.dumps(sc.to_dict()))
    restored = StoryClusterer.from_dict(data)
    assert restored.to_dict() == sc.to_dict()
    assert restored.assign("a2", *STORY_A_REWORDED, T0)[0] == "a1"


def test_signature_is_deterministic_and_banded() -> None:
    sig = signature(*STORY_A)
    assert sig == signature(*STORY_A)
    keys = band_keys(sig)
    assert len(keys) == len(set(keys)) and all(":" in k for k in keys)


def test_empty_text_does_not_crash() -> None:
    sc = StoryClusterer()
    cid, is_new, _ = sc.assign("e1", "", "", None)
    assert (cid, is_new) == ("e1", True)
