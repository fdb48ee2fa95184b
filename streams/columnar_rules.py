"""Vectorised kernels of the four rule types (one rule, one holder, a run of observations).

Each kernel reproduces one step function of ``streams.rules`` over an array of observations in
event order, with the same floating-point expressions (so the same crossings to the last bit),
and returns the indices that fire plus their direction (+1 up, -1 down) and threshold. State
goes in and out as the scalar engine's per-(rule, holder) dict, except the pct_move history,
which stays as two arrays (``MoveHist``) until the engine exports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
Idx = NDArray[np.intp]
Dirs = NDArray[np.int8]

UP, DOWN = 1, -1
_SIDE = {"above": 1, "below": -1}
_SIDE_NAME = {1: "above", -1: "below"}
_EMPTY_I = np.empty(0, np.intp)
_EMPTY_D = np.empty(0, np.int8)
_EMPTY_F = np.empty(0, np.float64)


@dataclass(slots=True)
class Fired:
    """Positions (into the kernel's input) that alert, with direction and threshold."""

    at: Idx
    direction: Dirs
    threshold: F64

    @staticmethod
    def none() -> Fired:
        return Fired(_EMPTY_I, _EMPTY_D, _EMPTY_F)


def _transitions(code: NDArray[np.int8], start: int) -> tuple[Idx, Dirs, int]:
    """A machine whose input sets its state (+1/-1) or keeps it (0): the positions where the
    state changes, the new states there, and the final state. The state can only change where
    a run of equal codes starts, so only those (few) positions are looked at: no walk."""
    n = len(code)
    starts = np.flatnonzero(code[1:] != code[:-1]) + 1
    if n and code[0] != 0:
        starts = np.concatenate(([0], starts))
    starts = starts[code[starts] != 0]
    if len(starts) == 0:
        return _EMPTY_I, _EMPTY_D, start
    vals = code[starts]
    prev = np.empty_like(vals)
    prev[0] = start
    prev[1:] = vals[:-1]
    chg = np.flatnonzero(vals != prev)
    return starts[chg], vals[chg], int(vals[-1])


def running_max_before(v: F64, start: float) -> F64:
    """``out[i] = max(start, v[0..i-1])``. ``maximum.accumulate`` costs ~10 ns an element;
    here only blocks that hold a new high are accumulated, the rest is a fill (a price walk
    sets few new highs)."""
    n = len(v)
    size = 256
    m = -(-n // size)
    buf = np.full(m * size, -np.inf)
    buf[0] = start
    buf[1:n] = v[:-1]
    blocks = buf.reshape(m, size)
    top = blocks.max(axis=1)
    before = np.empty(m)
    before[0] = -np.inf
    np.maximum.accumulate(top[:-1], out=before[1:])
    out = np.repeat(before, size).reshape(m, size)  # blocks without a new high: a fill
    new = np.flatnonzero(top > before)
    if len(new):
        acc = np.fmax.accumulate(blocks[new], axis=1)  # no NaN here: fmax is max, faster
        out[new] = np.maximum(acc, before[new, None])
    return out.reshape(-1)[:n]


def _keep(fired: Fired, wants_up: bool, wants_down: bool) -> Fired:
    if wants_up and wants_down:
        return fired
    keep = fired.direction == (UP if wants_up else DOWN)
    return Fired(fired.at[keep], fired.direction[keep], fired.threshold[keep])


def cross(
    st: dict[str, Any],
    x: F64,
    level: F64 | float,
    h: float,
    wants_up: bool,
    wants_down: bool,
) -> Fired:
    """``rules._cross`` over a run: the first observation of a fresh state only takes a side;
    then up when ``x >= level + level*h`` from below, down when ``x < level - level*h`` from
    above. With h >= 0 the two conditions exclude each other, so the side after each step is
    the last condition met. ``level`` is one number or one per observation."""
    n = len(x)
    if n == 0:
        return Fired.none()
    side0 = _SIDE.get(st.get("side"), 0)  # type: ignore[arg-type]
    first = 0
    if side0 == 0:
        lv0 = level if isinstance(level, float) else float(level[0])
        side0 = 1 if x[0] >= lv0 else -1
        first = 1
        if n == 1:
            st["side"] = _SIDE_NAME[side0]
            return Fired.none()
    xs = x[first:] if first else x
    lv = level if isinstance(level, float) else level[first:]
    band = lv * h
    code = (xs >= lv + band).view(np.int8) - (xs < lv - band).view(np.int8)
    at, d, last = _transitions(code, side0)
    st["side"] = _SIDE_NAME[last]
    thr = np.full(len(at), level) if isinstance(lv, float) else lv[at]
    return _keep(Fired(at + first, d, thr), wants_up, wants_down)


def drawdown(st: dict[str, Any], v: F64, pct: float, wants_up: bool, wants_down: bool) -> Fired:
    """``rules._drawdown`` over a run. The peak each step compares with is the running max of
    the values before it; enter when ``v <= peak*(1-pct/100)`` (peak > 0), leave when
    ``v >= peak``. Both can hold only where the floor rounds to the peak (pct ~ 1e-16, or a
    subnormal peak); there the step depends on the state, so such a run is walked."""
    n = len(v)
    if n == 0:
        return Fired.none()
    first = 0
    if st.get("peak") is None:
        st["peak"], st["in_dd"] = float(v[0]), False
        first = 1
        if n == 1:
            return Fired.none()
    vs = v[first:] if first else v
    peaks = running_max_before(vs, st["peak"])
    factor = 1 - pct / 100
    floors = peaks * factor
    enter = vs <= floors
    if not peaks[0] > 0:  # peaks only grow: checked only while the first one is not positive
        enter &= peaks > 0
    leave = vs >= peaks
    start = 1 if st["in_dd"] else -1
    if (factor == 1.0 or peaks[0] < 1e-300) and np.any(enter & leave):
        states = _walk_drawdown(enter, leave, start == 1)
        at = np.flatnonzero(states != np.concatenate(([start], states[:-1])))
        d, last = states[at], int(states[-1])
    else:
        at, d, last = _transitions(enter.view(np.int8) - leave.view(np.int8), start)
    d = np.where(d == 1, np.int8(DOWN), np.int8(UP)).astype(np.int8)  # entering alerts down
    thr = np.where(d == DOWN, floors[at], peaks[at])
    st["in_dd"] = last == 1
    st["peak"] = max(float(peaks[-1]), float(vs[-1]))
    return _keep(Fired(at + first, d, thr), wants_up, wants_down)


def _walk_drawdown(
    enter: NDArray[np.bool_], leave: NDArray[np.bool_], in_dd: bool
) -> NDArray[np.int8]:
    out = np.empty(len(enter), np.int8)
    for i, (e, lv) in enumerate(zip(enter.tolist(), leave.tolist(), strict=True)):
        in_dd = e if not in_dd else not lv
        out[i] = 1 if in_dd else -1
    return out


@dataclass(slots=True)
class MoveHist:
    """pct_move history ``[[t, value], ...]`` as columns (oldest first)."""

    t: F64
    v: F64

    @staticmethod
    def of(rows: list[list[float]] | None) -> MoveHist:
        if not rows:
            return MoveHist(_EMPTY_F, _EMPTY_F)
        a = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
        return MoveHist(a[:, 0].copy(), a[:, 1].copy())

    def rows(self) -> list[list[float]]:
        return np.column_stack((self.t, self.v)).tolist() if len(self.t) else []


def _hist_index(hist_t: F64, q: F64, shared: list[tuple[F64, F64, Idx]] | None) -> Idx:
    """Index into ``hist_t`` of the last time <= each query (-1: none)."""
    if shared is not None:
        for ht, qq, found in shared:  # holders with the same history times share the search
            if len(ht) == len(hist_t) and len(qq) == len(q):
                if np.array_equal(ht, hist_t) and np.array_equal(qq, q):
                    return found
    found = np.searchsorted(hist_t, q, side="right") - 1
    if shared is not None:
        shared.append((hist_t, q, found))
    return found


def batch_index(t: F64, w: float) -> Idx:
    return np.searchsorted(t, t - w, side="right").astype(np.intp) - 1


def pct_move(
    st: dict[str, Any],
    hist: MoveHist,
    t: F64,
    v: F64,
    w: float,
    pct: float,
    wants_up: bool,
    wants_down: bool,
    in_batch: Idx | None = None,
    positive: bool = False,
    shared: list[tuple[F64, F64, Idx]] | None = None,
) -> tuple[Fired, MoveHist]:
    """``rules._pct_move`` over a run: reference = the last point at or before ``t - w``;
    the cool-down (``quiet_up``/``quiet_down``) is walked only over the candidate positions.
    ``positive``: every value of the run and of ``hist`` is > 0 (skips the ref > 0 guard).
    ``shared``: searches of other holders' histories, reused when the times are equal."""
    n = len(t)
    if n == 0:
        return Fired.none(), hist
    if in_batch is None:
        in_batch = batch_index(t, w)
    miss = int(np.searchsorted(in_batch, 0, side="left"))  # a prefix: reference not in batch
    ref = np.empty(n)
    if miss and len(hist.t) == 0:
        ref[:miss] = np.nan
        has_from, keep = miss, 0
    elif miss:
        jh = _hist_index(hist.t, t[:miss] - w, shared)
        ref[:miss] = np.where(jh >= 0, hist.v[np.maximum(jh, 0)], np.nan)
        has_from = miss - int(np.count_nonzero(jh >= 0))  # jh is sorted: no ref is a prefix
        keep = max(int(jh[-1]), 0) if miss == n else 0  # where the kept history starts
    else:
        has_from = keep = 0
    ref[miss:] = v[in_batch[miss:]]
    vs, rs = v[has_from:], ref[has_from:]
    change = np.subtract(vs, rs)  # (v - ref) / ref * 100, the scalar's expression, in place
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(change, rs, out=change)
    np.multiply(change, 100, out=change)
    if not positive:
        change[~(rs > 0)] = 0.0
    fired_at: list[int] = []
    fired_d: list[int] = []
    for d, name, want in ((UP, "quiet_up", wants_up), (DOWN, "quiet_down", wants_down)):
        if not want:
            continue
        cand = change >= pct if d == UP else change <= -pct
        quiet = st.get(name, -math.inf)
        before = len(fired_at)
        i = max(int(np.searchsorted(t, quiet, side="left")), has_from)
        while i < n:  # the next candidate at or after the cool-down (argmax: first True)
            k = i + int(cand[i - has_from :].argmax())
            if not cand[k - has_from]:
                break
            fired_at.append(k)
            quiet = float(t[k]) + w
            i = int(np.searchsorted(t, quiet, side="left"))
        if len(fired_at) > before:
            st[name] = quiet
            fired_d.extend([d] * (len(fired_at) - before))
    j = int(in_batch[-1])  # the last observation's reference, if it is in the batch
    if j >= 0:  # then the old history is gone
        new_hist = MoveHist(t[j:].copy(), v[j:].copy())
    else:
        new_hist = MoveHist(np.concatenate((hist.t[keep:], t)), np.concatenate((hist.v[keep:], v)))
    if not fired_at:
        return Fired.none(), new_hist
    at = np.asarray(fired_at, np.intp)
    order = np.argsort(at, kind="stable")
    at, dirs = at[order], np.asarray(fired_d, np.int8)[order]
    return Fired(at, dirs, ref[at]), new_hist
