"""Unit tests of near-duplicate story grouping (synthetic stories written for these tests)."""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import dedup
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


# --- the numpy signatures and scoring against the scalar definitions -----------------------

_SYLLABLES = ["ka", "lo", "mi", "ten", "ras", "vo", "qui", "bel", "dor", "un", "sa", "gre"]


_VOCAB_RND = random.Random(5)
# Made-up words, with some stop words and numbers mixed in.
_VOCAB = ["the", "of", "and", "said", "2025", "21"] + [
    "".join(_VOCAB_RND.choice(_SYLLABLES) for _ in range(1 + i % 4)) for i in range(3000)
]


def _words(rnd: random.Random, n: int, vocab: int = 300) -> list[str]:
    """``n`` words drawn from the first ``vocab`` of the made-up vocabulary."""
    return rnd.choices(_VOCAB[:vocab], k=n)


def _variant(rnd: random.Random, words: list[str], change: float) -> list[str]:
    out = [w for w in words if rnd.random() > change / 2]  # drop some words ...
    return [_words(rnd, 1)[0] if rnd.random() < change else w for w in out]  # ... replace some


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 900))
def test_signature_equals_the_scalar_reference(seed: int, n: int) -> None:
    rnd = random.Random(seed)
    title, text = " ".join(_words(rnd, 6)), " ".join(_words(rnd, n, vocab=rnd.choice([5, 3000])))
    assert signature(title, text) == dedup._reference_signature(title, text)


@pytest.mark.parametrize(
    "text", ["", "the of and", "ÄÖÜ ß ünïcode — 42", "x", " ".join(["w"] * 700), "a1 b2 " * 400]
)
def test_signature_equals_the_reference_on_edge_cases(text: str) -> None:
    assert signature("", text) == dedup._reference_signature("", text)


def test_signature_values_are_python_ints_below_the_prime() -> None:
    sig = signature(*STORY_A)
    assert all(type(v) is int and 0 <= v < (1 << 61) - 1 for v in sig)
    assert json.loads(json.dumps(sig)) == sig


class _ScalarClusterer:
    """The clustering rule as the scalar loop applied it (count and window bounds, buckets
    of ids, candidates visited in id order, first strictly better match wins)."""

    def __init__(self, max_entries: int, window: timedelta, threshold: float) -> None:
        self.max_entries, self.window, self.threshold = max_entries, window, threshold
        self.entries: OrderedDict[str, tuple[str, list[int], float | None]] = OrderedDict()
        self.buckets: dict[str, list[str]] = {}
        self.newest: float | None = None

    def assign(self, aid: str, title: str, text: str, published: datetime | None) -> str:
        if aid in self.entries:
            return self.entries[aid][0]
        ts = None if published is None else published.timestamp()
        sig = dedup._reference_signature(title, text)
        keys = band_keys(sig)
        best, best_sim = None, self.threshold
        for cand in sorted({i for k in keys for i in self.buckets.get(k, ())}):
            cluster, csig, cts = self.entries[cand]
            if ts is not None and cts is not None and abs(ts - cts) > self.window.total_seconds():
                continue
            sim = dedup.similarity(sig, csig)
            if sim >= best_sim and (best is None or sim > best_sim):
                best, best_sim = cluster, sim
        self.entries[aid] = (best or aid, sig, ts)
        for k in keys:
            self.buckets.setdefault(k, []).append(aid)
        if ts is not None:
            self.newest = max(self.newest or ts, ts)
        horizon = None if self.newest is None else self.newest - self.window.total_seconds()
        while self.entries:
            oid, (_, osig, ots) = next(iter(self.entries.items()))
            expired = horizon is not None and ots is not None and ots < horizon
            if len(self.entries) <= self.max_entries and not expired:
                break
            del self.entries[oid]
            for k in band_keys(osig):
                self.buckets[k].remove(oid)
        return best or aid


def _stream(seed: int, n: int) -> list[tuple[str, str, str, datetime | None]]:
    """Stories and near-duplicate variants (light to heavy rewording), some without a date,
    some arriving out of order, ids not in arrival order."""
    rnd = random.Random(seed)
    stories: list[list[str]] = []
    out = []
    for i in range(n):
        if stories and rnd.random() < 0.6:
            words = _variant(rnd, rnd.choice(stories), rnd.choice([0.0, 0.1, 0.3, 0.6]))
        else:
            words = _words(rnd, rnd.randint(5, 120))
            stories.append(words)
        when = None if rnd.random() < 0.1 else T0 + timedelta(hours=rnd.uniform(0, 30) + i / 4)
        out.append((f"id{rnd.randrange(10**6):06d}", " ".join(words[:5]), " ".join(words), when))
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), max_entries=st.integers(1, 40))
def test_clustering_decisions_equal_the_scalar_rule(seed: int, max_entries: int) -> None:
    window = timedelta(hours=12)
    new, old = StoryClusterer(max_entries, window), _ScalarClusterer(max_entries, window, 0.25)
    for aid, title, text, when in _stream(seed, 80):
        assert new.assign(aid, title, text, when)[0] == old.assign(aid, title, text, when)
        assert list(new.ids()) == list(old.entries) or new.ids() == set(old.entries)
    assert [(r["id"], r["cluster"], r["sig"]) for r in new.to_dict()["entries"]] == [
        (i, c, s) for i, (c, s, _) in old.entries.items()
    ]


def test_entries_stored_by_the_scalar_version_restore_and_match() -> None:
    # What the table holds from before: rows with the scalar signature; they stay valid as is.
    rows = [
        {"id": "a1", "cluster": "a1", "sig": dedup._reference_signature(*STORY_A), "ts": 1.0e9},
        {"id": "b1", "cluster": "b1", "sig": dedup._reference_signature(*STORY_B), "ts": None},
    ]
    state = {"version": 1, "max_entries": 10, "window_s": 1e9, "threshold": 0.25}
    c = StoryClusterer.from_dict({**state, "entries": rows})
    assert c.to_dict()["entries"] == rows
    assert c.assign("a2", *STORY_A_REWORDED)[0] == "a1"
    assert c.entry_dict("a2")["sig"] == dedup._reference_signature(*STORY_A_REWORDED)


def test_restore_rejects_signatures_out_of_range() -> None:
    state = {"version": 1, "max_entries": 10, "window_s": 60.0, "threshold": 0.25}
    bad = {"id": "x", "cluster": "x", "sig": [-1] * dedup.NUM_PERM, "ts": None}
    with pytest.raises(ValueError, match="entry x"):
        StoryClusterer.from_dict({**state, "entries": [bad]})


def test_evicted_ids_are_reported_once_and_slots_reused() -> None:
    sc = StoryClusterer(max_entries=3)
    for i in range(10):
        sc.assign(f"n{i}", f"Story {i}", f"unique words {i} {i * i} w{i}")
    assert sc.take_evicted() == [f"n{i}" for i in range(7)]
    assert sc.take_evicted() == []
    assert len(sc._sigs) <= 4  # noqa: SLF001 - capacity stays max_entries + 1


def _string_key_decisions(stream: list[tuple[str, str, str, datetime | None]], n: int) -> list[str]:
    """Cluster ids as the clusterer chose them with the hashed ``band_keys`` buckets and the
    candidates visited in sorted id order (the previous ``_best_cluster``)."""
    old = _ScalarClusterer(n, timedelta(hours=12), 0.25)
    return [old.assign(aid, title, text, when) for aid, title, text, when in stream]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), max_entries=st.integers(1, 60))
def test_many_exact_copies_tie_to_the_smallest_id_as_before(seed: int, max_entries: int) -> None:
    # Re-sent copies of a few stories under random ids: every copy ties with all the others,
    # and eviction frees slots that later copies reuse.
    rnd = random.Random(seed)
    stories = [_words(rnd, rnd.randint(5, 80)) for _ in range(4)]
    stream = []
    for i in range(120):
        words = rnd.choice(stories)
        if rnd.random() < 0.2:
            words = _variant(rnd, words, 0.3)
        when = None if rnd.random() < 0.1 else T0 + timedelta(hours=rnd.uniform(0, 30) + i / 8)
        stream.append((f"id{rnd.randrange(10**4):04d}", "t", " ".join(words), when))
    new = StoryClusterer(max_entries, timedelta(hours=12))
    got = [new.assign(aid, title, text, when)[0] for aid, title, text, when in stream]
    assert got == _string_key_decisions(stream, max_entries)


@given(
    a=st.lists(st.integers(0, 3), min_size=dedup.NUM_PERM, max_size=dedup.NUM_PERM),
    b=st.lists(st.integers(0, 3), min_size=dedup.NUM_PERM, max_size=dedup.NUM_PERM),
)
def test_in_memory_band_keys_match_where_the_string_keys_match(a: list[int], b: list[int]) -> None:
    same = [x == y for x, y in zip(dedup._bands(a), dedup._bands(b), strict=True)]
    assert same == [x == y for x, y in zip(band_keys(a), band_keys(b), strict=True)]


def test_signature_is_the_same_when_the_digest_cache_is_cleared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dedup, "_DIGESTS_MAX", 50)  # cleared before nearly every article
    monkeypatch.setattr(dedup, "_DIGESTS", {})
    for story in (STORY_A, STORY_B, STORY_A_REWORDED, STORY_A):
        assert signature(*story) == dedup._reference_signature(*story)
        assert len(dedup._DIGESTS) <= max(50, len(dedup.shingles(*story)))
