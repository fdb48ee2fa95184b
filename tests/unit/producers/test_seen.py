"""Pins producers.seen: bounded, ordered, persisted, tolerant of a corrupt file."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.seen import SeenStore


def test_bound_evicts_oldest_first(tmp_path: Path) -> None:
    store = SeenStore(tmp_path / "s.json", limit=3)
    for item in "abcd":
        store.add(item)
    assert len(store) == 3
    assert "a" not in store
    assert all(x in store for x in "bcd")


def test_re_adding_does_not_grow_or_refresh(tmp_path: Path) -> None:
    store = SeenStore(None, limit=2)
    store.add("a")
    store.add("a")
    store.add("b")
    assert len(store) == 2
    store.add("c")
    assert "a" not in store


def test_round_trip_with_validators(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "seen.json"
    store = SeenStore(path, limit=10)
    store.add("x")
    store.validators["https://f.example/rss"] = {"etag": '"abc"', "modified": "Tue, 10 Jun 2025"}
    store.save()
    again = SeenStore.load(path, limit=10)
    assert "x" in again
    assert again.validators == store.validators
    assert not (path.parent / "seen.json.tmp").exists()


def test_load_applies_a_smaller_limit(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    big = SeenStore(path, limit=100)
    for i in range(50):
        big.add(str(i))
    big.save()
    small = SeenStore.load(path, limit=5)
    assert len(small) == 5
    assert "49" in small and "0" not in small


def test_corrupt_file_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{not json")
    assert len(SeenStore.load(path)) == 0


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SeenStore(None, limit=0)
