"""Near-duplicate story grouping: MinHash over word shingles, LSH buckets, bounded state.

The same wire story reappears across outlets with light rewording. Each article gets a MinHash
signature of its normalised title + text (stop words dropped, words and word bigrams, hashed with
blake2b so results never depend on Python's salted ``hash()``). Signatures are cut into LSH
bands; articles sharing a band are candidates, and a candidate within ``window`` whose
estimated Jaccard similarity reaches ``threshold`` joins its cluster. The cluster id is the id
of the cluster's first article, so replays give the same ids.

State layout (what ``to_dict`` writes, and how a Faust table can hold it):

- ``entries``: article id -> ``{"cluster", "sig", "ts"}``, oldest first. At most
  ``max_entries``; the oldest are evicted first, and entries older than ``window`` before the
  newest article are dropped.
- ``buckets``: band key (``"<band>:<hex>"``) -> article ids. Buckets are derived from entries,
  so a table keyed by band key (value: the bucket's entries with their signatures) shards the
  same state by band; ``band_keys`` gives the keys an article needs to read and write.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

NUM_PERM = 64
BANDS, ROWS = 32, 2  # candidate threshold ~ (1/32) ** (1/2) ~ 0.18; verified afterwards
_MERSENNE = (1 << 61) - 1
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an and are as at be been but by for from has have he in is it its of on or said says "
    "that the their this to was were which will with would after over new also than more".split()
)


def _h64(data: str) -> int:
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big")


# Fixed permutation parameters derived from their index: identical on every worker.
_PERMS = [(_h64(f"a{i}") % _MERSENNE | 1, _h64(f"b{i}") % _MERSENNE) for i in range(NUM_PERM)]


def shingles(title: str, text: str, max_words: int = 600) -> set[str]:
    """Content words and word bigrams of the lower-cased title + text.

    Bigrams separate different stories; the single words keep a lightly reworded copy of the
    same story similar (measured: ~0.45 for a rewrite vs < 0.1 for unrelated stories).
    """
    words = [w for w in _WORD.findall(f"{title} {text}".lower()) if w not in _STOP][:max_words]
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}


def signature(title: str, text: str) -> list[int]:
    hashes = [_h64(s) for s in shingles(title, text)] or [0]
    return [min((a * h + b) % _MERSENNE for h in hashes) for a, b in _PERMS]


def band_keys(sig: list[int]) -> list[str]:
    keys = []
    for band in range(BANDS):
        chunk = ",".join(str(v) for v in sig[band * ROWS : (band + 1) * ROWS])
        keys.append(f"{band}:{hashlib.blake2b(chunk.encode(), digest_size=6).hexdigest()}")
    return keys


def similarity(a: list[int], b: list[int]) -> float:
    """MinHash estimate of the Jaccard similarity of two shingle sets."""
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


@dataclass
class _Entry:
    cluster: str
    sig: list[int]
    ts: float | None  # POSIX seconds of `published`, when known


class StoryClusterer:
    """Assign articles to story clusters; state bounded by count and by time."""

    def __init__(
        self,
        max_entries: int = 10_000,
        window: timedelta = timedelta(days=3),
        threshold: float = 0.25,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self.window = window
        self.threshold = threshold
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._buckets: dict[str, list[str]] = {}
        self._clusters: dict[str, list[str]] = {}  # cluster id -> member ids, oldest first
        self._newest: float | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def assign(
        self, article_id: str, title: str, text: str, published: datetime | None = None
    ) -> tuple[str, bool, list[str]]:
        """Return (cluster_id, is_new_cluster, member ids known in state, oldest first)."""
        if article_id in self._entries:  # a replay keeps its cluster and creates nothing
            cluster = self._entries[article_id].cluster
            return cluster, False, self.members(cluster)
        ts = published.timestamp() if published is not None else None
        sig = signature(title, text)
        keys = band_keys(sig)
        best, best_sim = None, self.threshold
        for cand in sorted({i for k in keys for i in self._buckets.get(k, ())}):
            entry = self._entries[cand]
            if (
                ts is not None
                and entry.ts is not None
                and abs(ts - entry.ts) > self.window.total_seconds()
            ):
                continue
            sim = similarity(sig, entry.sig)
            if sim >= best_sim and (best is None or sim > best_sim):
                best, best_sim = entry.cluster, sim
        cluster = best or article_id
        self._add(article_id, _Entry(cluster, sig, ts), keys)
        return cluster, best is None, self.members(cluster)

    def ids(self) -> set[str]:
        """Article ids currently held (after eviction)."""
        return set(self._entries)

    def entry_dict(self, article_id: str) -> dict[str, Any]:
        """One entry in the ``to_dict`` row format, for per-article table storage."""
        e = self._entries[article_id]
        return {"id": article_id, "cluster": e.cluster, "sig": e.sig, "ts": e.ts}

    def members(self, cluster: str) -> list[str]:
        return list(self._clusters.get(cluster, ()))

    def _add(self, article_id: str, entry: _Entry, keys: list[str]) -> None:
        self._entries[article_id] = entry
        self._clusters.setdefault(entry.cluster, []).append(article_id)
        for k in keys:
            self._buckets.setdefault(k, []).append(article_id)
        if entry.ts is not None:
            self._newest = max(self._newest or entry.ts, entry.ts)
        self._evict()

    def _evict(self) -> None:
        horizon = None if self._newest is None else self._newest - self.window.total_seconds()
        while self._entries:
            oldest_id, oldest = next(iter(self._entries.items()))
            expired = horizon is not None and oldest.ts is not None and oldest.ts < horizon
            if len(self._entries) <= self.max_entries and not expired:
                break
            del self._entries[oldest_id]
            members = self._clusters[oldest.cluster]
            members.remove(oldest_id)
            if not members:
                del self._clusters[oldest.cluster]
            for k in band_keys(oldest.sig):
                bucket = self._buckets.get(k, [])
                if oldest_id in bucket:
                    bucket.remove(oldest_id)
                if not bucket:
                    self._buckets.pop(k, None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "max_entries": self.max_entries,
            "window_s": self.window.total_seconds(),
            "threshold": self.threshold,
            "entries": [
                {"id": i, "cluster": e.cluster, "sig": e.sig, "ts": e.ts}
                for i, e in self._entries.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoryClusterer:
        if data.get("version") != 1:
            raise ValueError(f"unsupported StoryClusterer state version: {data.get('version')}")
        self = cls(
            int(data["max_entries"]),
            timedelta(seconds=float(data["window_s"])),
            float(data["threshold"]),
        )
        for row in data["entries"]:
            sig = [int(v) for v in row["sig"]]
            if len(sig) != NUM_PERM:
                raise ValueError(f"entry {row['id']}: signature of {len(sig)} values")
            ts = None if row["ts"] is None else float(row["ts"])
            entry = _Entry(str(row["cluster"]), sig, ts)
            self._add(str(row["id"]), entry, band_keys(sig))
        return self
