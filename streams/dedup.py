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
- ``buckets``: band -> the slots of the entries whose signature has that band's values.
  Buckets are derived from entries, so a table keyed by band key (``"<band>:<hex>"``, value: the
  bucket's entries with their signatures) shards the same state by band; ``band_keys`` gives the
  keys an article needs to read and write. In memory a band is keyed by its values themselves
  (``(band, v1, v2)``): the same buckets without hashing 32 strings per article.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

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


# Shingle -> its blake2b digest. Words and common bigrams recur from article to article, and a
# lookup costs a tenth of a hash; cleared when full, so memory stays bounded (~10 MB).
_DIGESTS: dict[str, bytes] = {}
_DIGESTS_MAX = 65_536


# Fixed permutation parameters derived from their index: identical on every worker.
_PERMS = [(_h64(f"a{i}") % _MERSENNE | 1, _h64(f"b{i}") % _MERSENNE) for i in range(NUM_PERM)]


def shingles(title: str, text: str, max_words: int = 600) -> set[str]:
    """Content words and word bigrams of the lower-cased title + text.

    Bigrams separate different stories; the single words keep a lightly reworded copy of the
    same story similar (measured: ~0.45 for a rewrite vs < 0.1 for unrelated stories).
    """
    words = [w for w in _WORD.findall(f"{title} {text}".lower()) if w not in _STOP][:max_words]
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}


# The affine hashes below work on uint64 without overflow: a and h are first reduced below
# 2**61, split into 32-bit halves, and the partial products folded with 2**61 == 1 (mod p).
_P = np.uint64(_MERSENNE)
_A = np.array([a for a, _ in _PERMS], dtype=np.uint64)[:, None]
_B = np.array([b for _, b in _PERMS], dtype=np.uint64)[:, None]
_LOW32, _LOW29 = np.uint64(0xFFFFFFFF), np.uint64((1 << 29) - 1)
_A_LO, _A_HI = _A & _LOW32, _A >> np.uint64(32)
_U3, _U29, _U32, _U61 = (np.uint64(n) for n in (3, 29, 32, 61))
# Shingles per pass: 64 x 128 uint64 temporaries (64 kB) stay in cache and in malloc's heap;
# one pass over ~400 shingles measured ~3x slower (page faults on fresh 200 kB arrays).
_CHUNK = 128

U64s = npt.NDArray[np.uint64]


def _min_mod_p(x: U64s, scratch: U64s) -> U64s:
    """``min(x mod p)`` per row, for ``x < 2**64``; ``x`` and ``scratch`` are overwritten."""
    np.bitwise_and(x, _P, out=scratch)
    x >>= _U61
    x += scratch  # < p + 8: at most one subtraction of p left
    np.subtract(x, _P, out=scratch)  # wraps to > x where x < p, so the minimum is x mod p
    np.minimum(x, scratch, out=x)
    out: U64s = x.min(axis=1)
    return out


def _minhash_chunk(h: U64s) -> U64s:
    """Per permutation, ``min((a*h + b) mod p)`` over the hashes ``h`` (all < p)."""
    h_lo, h_hi = h & _LOW32, h >> _U32
    mid = np.multiply(_A_HI, h_lo)  # a*h = hi*2**64 + mid*2**32 + low
    tmp = np.multiply(_A_LO, h_hi)
    mid += tmp  # < 2**62
    low = np.multiply(_A_LO, h_lo)  # < 2**64
    acc = np.multiply(_A_HI, h_hi, out=tmp)
    acc <<= _U3  # 2**64 == 8 (mod p); < 2**61
    spare = np.right_shift(mid, _U29)  # mid*2**32 == (mid >> 29) + (mid & (2**29-1)) * 2**32
    acc += spare
    mid &= _LOW29
    mid <<= _U32
    acc += mid
    np.bitwise_and(low, _P, out=spare)  # low == (low & p) + (low >> 61)
    acc += spare
    low >>= _U61
    acc += low
    acc += _B  # four terms below 2**61 (+ small): < 2**64
    return _min_mod_p(acc, spare)


def shingle_hashes(title: str, text: str) -> U64s:
    """The 64-bit blake2b hash of every shingle (``[0]`` when there is none)."""
    found = shingles(title, text)
    if not found:
        return np.zeros(1, dtype=np.uint64)
    if len(_DIGESTS) + len(found) > _DIGESTS_MAX:
        _DIGESTS.clear()
    get, parts = _DIGESTS.get, []
    for s in found:
        d = get(s)
        if d is None:
            d = _DIGESTS[s] = hashlib.blake2b(s.encode(), digest_size=8).digest()
        parts.append(d)
    return np.frombuffer(b"".join(parts), dtype=">u8").astype(np.uint64)


def signature_array(title: str, text: str) -> U64s:
    """MinHash signature: per permutation, min over shingles of ``(a*h + b) mod p``.

    Equal, value for value, to ``_reference_signature`` (the scalar definition), so signatures
    stored by earlier versions stay valid.
    """
    h = shingle_hashes(title, text)
    h = (h & _P) + (h >> _U61)
    h = np.minimum(h, h - _P)  # h mod p, as in _min_mod_p
    out = _minhash_chunk(h[:_CHUNK])
    for i in range(_CHUNK, len(h), _CHUNK):
        np.minimum(out, _minhash_chunk(h[i : i + _CHUNK]), out=out)
    return out


def signature(title: str, text: str) -> list[int]:
    return [int(v) for v in signature_array(title, text).tolist()]


def _reference_signature(title: str, text: str) -> list[int]:
    """The scalar definition (Python integers), for tests of ``signature_array``."""
    hashes = [_h64(s) for s in shingles(title, text)] or [0]
    return [min((a * h + b) % _MERSENNE for h in hashes) for a, b in _PERMS]


def band_keys(sig: list[int]) -> list[str]:
    keys = []
    for band in range(BANDS):
        chunk = ",".join(str(v) for v in sig[band * ROWS : (band + 1) * ROWS])
        keys.append(f"{band}:{hashlib.blake2b(chunk.encode(), digest_size=6).hexdigest()}")
    return keys


BandKey = tuple[int, int, int]  # (band, its ROWS = 2 values): a bucket's key in memory


def _bands(sig: list[int]) -> list[BandKey]:
    """The in-memory bucket keys of a signature: equal exactly when ``band_keys`` are equal
    (short of a 48-bit hash collision, which the string keys allow and these do not)."""
    return list(zip(range(BANDS), sig[0::ROWS], sig[1::ROWS], strict=True))


def similarity(a: list[int], b: list[int]) -> float:
    """MinHash estimate of the Jaccard similarity of two shingle sets."""
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def _as_row(sig: list[int]) -> npt.NDArray[np.uint64]:
    if len(sig) != NUM_PERM:
        raise ValueError(f"signature of {len(sig)} values")
    if any(not 0 <= v < _MERSENNE for v in sig):
        raise ValueError("signature value out of range")
    return np.array(sig, dtype=np.uint64)


@dataclass
class _Entry:
    cluster: str
    sig: list[int]
    ts: float | None  # POSIX seconds of `published`, when known
    slot: int  # row in StoryClusterer._sigs / _ts
    keys: list[BandKey]  # bucket keys, kept so eviction does not recompute them


class StoryClusterer:
    """Assign articles to story clusters; state bounded by count and by time.

    Signatures also live as rows of one uint64 matrix (a slot per entry, reused after
    eviction), so the candidates an article's buckets yield are scored in one numpy pass.
    Buckets hold slots (ints), so candidates are gathered as one set union and only the best
    scoring ones are looked up by id.
    """

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
        self._buckets: dict[BandKey, set[int]] = {}  # band -> slots of its entries
        self._clusters: dict[str, list[str]] = {}  # cluster id -> member ids, oldest first
        self._newest: float | None = None
        # Grown by doubling up to max_entries + 1 (an add precedes its eviction).
        cap = min(64, max_entries + 1)
        self._sigs = np.zeros((cap, NUM_PERM), dtype=np.uint64)
        self._ts = np.full(cap, np.nan)  # NaN: published unknown
        self._free: list[int] = list(range(cap - 1, -1, -1))
        self._slot_ids: list[str] = [""] * cap  # slot -> article id of its entry
        self._evicted: list[str] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._entries

    def assign(
        self, article_id: str, title: str, text: str, published: datetime | None = None
    ) -> tuple[str, bool, list[str]]:
        """Return (cluster_id, is_new_cluster, member ids known in state, oldest first)."""
        if article_id in self._entries:  # a replay keeps its cluster and creates nothing
            cluster = self._entries[article_id].cluster
            return cluster, False, self.members(cluster)
        ts = published.timestamp() if published is not None else None
        row = signature_array(title, text)
        sig = row.tolist()
        keys = _bands(sig)
        best = self._best_cluster(row, ts, keys)
        cluster = best or article_id
        self._add(article_id, cluster, sig, row, ts, keys)
        return cluster, best is None, self.members(cluster)

    def _best_cluster(
        self, row: npt.NDArray[np.uint64], ts: float | None, keys: list[BandKey]
    ) -> str | None:
        """The cluster of the most similar candidate within the window reaching the threshold;
        ties go to the smallest article id (the order the scalar loop visited them in)."""
        buckets = [b for b in map(self._buckets.get, keys) if b]
        if not buckets:
            return None
        cands = set().union(*buckets)
        slots = np.fromiter(cands, dtype=np.intp, count=len(cands))
        sims = (self._sigs[slots] == row).sum(axis=1)  # equal values out of NUM_PERM
        if ts is not None:
            with np.errstate(invalid="ignore"):  # NaN (no ts) compares False: kept
                sims[np.abs(ts - self._ts[slots]) > self.window.total_seconds()] = -NUM_PERM
        top = int(sims.max())
        if top / NUM_PERM < self.threshold:
            return None
        best = min(map(self._slot_ids.__getitem__, slots[sims == top].tolist()))
        return self._entries[best].cluster

    def ids(self) -> set[str]:
        """Article ids currently held (after eviction)."""
        return set(self._entries)

    def take_evicted(self) -> list[str]:
        """Ids evicted since the last call, oldest first (cheaper than diffing ``ids()``)."""
        out, self._evicted = self._evicted, []
        return out

    def entry_dict(self, article_id: str) -> dict[str, Any]:
        """One entry in the ``to_dict`` row format, for per-article table storage."""
        e = self._entries[article_id]
        return {"id": article_id, "cluster": e.cluster, "sig": e.sig, "ts": e.ts}

    def members(self, cluster: str) -> list[str]:
        return list(self._clusters.get(cluster, ()))

    def _slot(self) -> int:
        if not self._free:
            old = len(self._sigs)
            cap = min(2 * old, self.max_entries + 1)
            self._sigs = np.concatenate([self._sigs, np.zeros((cap - old, NUM_PERM), np.uint64)])
            self._ts = np.concatenate([self._ts, np.full(cap - old, np.nan)])
            self._slot_ids.extend([""] * (cap - old))
            self._free = list(range(cap - 1, old - 1, -1))
        return self._free.pop()

    def _add(
        self,
        article_id: str,
        cluster: str,
        sig: list[int],
        row: npt.NDArray[np.uint64],
        ts: float | None,
        keys: list[BandKey],
    ) -> None:
        slot = self._slot()
        self._sigs[slot] = row
        self._ts[slot] = np.nan if ts is None else ts
        self._slot_ids[slot] = article_id
        self._entries[article_id] = _Entry(cluster, sig, ts, slot, keys)
        self._clusters.setdefault(cluster, []).append(article_id)
        for k in keys:
            self._buckets.setdefault(k, set()).add(slot)
        if ts is not None:
            self._newest = max(self._newest or ts, ts)
        self._evict()

    def _evict(self) -> None:
        horizon = None if self._newest is None else self._newest - self.window.total_seconds()
        while self._entries:
            oldest_id, oldest = next(iter(self._entries.items()))
            expired = horizon is not None and oldest.ts is not None and oldest.ts < horizon
            if len(self._entries) <= self.max_entries and not expired:
                break
            del self._entries[oldest_id]
            self._evicted.append(oldest_id)
            self._free.append(oldest.slot)
            members = self._clusters[oldest.cluster]
            members.remove(oldest_id)
            if not members:
                del self._clusters[oldest.cluster]
            for k in oldest.keys:
                bucket = self._buckets.get(k)
                if bucket is not None:
                    bucket.discard(oldest.slot)
                    if not bucket:
                        del self._buckets[k]

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
            try:
                arr = _as_row(sig)
            except ValueError as exc:
                raise ValueError(f"entry {row['id']}: {exc}") from None
            ts = None if row["ts"] is None else float(row["ts"])
            self._add(str(row["id"]), str(row["cluster"]), sig, arr, ts, _bands(sig))
        self._evicted.clear()  # restoring is not news to the caller
        return self
