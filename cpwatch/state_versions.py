"""Versions of the state the worker keeps in its Faust tables, and the migrations between them.

Pure: no Faust, no I/O. Every stored record is upgraded on read with ``migrate(kind, payload)``
and written in the current shape (``current(kind)``): a worker of a newer release reads what an
older one left in the changelog, and a record from a release newer than this code is refused
(``StateVersionError``) instead of being misread. The agents read and write through
``runtime/table_state.py``, which turns that refusal into the worker stopping.

Version 0 is every record written before versions existed (no ``"v"`` field). Version 1 is the
same fields plus ``"v": 1``; the two stored values that are bare numbers today become objects,
since a number cannot carry a field. The kinds (table, key → value; producer in brackets):

=================  ==============================================================================
kind               record
=================  ==============================================================================
positions          ``news-positions`` / ``match-positions`` (v0 and v1), ``story-positions`` /
                   ``route-alerts-positions`` / ``lifecycle-positions`` (v1 from the start):
                   partition → next offset ``int`` (runtime/position_table.py); v1
                   ``{"v": 1, "offset": int}``, keyed ``"p~i"`` (a key that hashes onto
                   changelog partition p; ``"p"`` before, still read)
story-entry        ``story-entries``, article id → ``{"id", "cluster", "sig", "ts"}``
                   (streams/story_processor.py, ``StoryState.row``)
lifecycle          ``alert-lifecycle``, ``b"lifecycle"`` → ``LifecycleTracker.to_dict()``
                   (``{"version": 1, "seen", "incidents"}``: its own format number, kept)
digest-group       ``alert-lifecycle``, ``digest␟sub␟labels`` → ``DigestGrouper.snapshot``
digest-sent        ``alert-lifecycle``, ``sent␟sub␟story`` → epoch seconds ``float``;
                   v1 ``{"v": 1, "at": float}``
digest-outbox      ``alert-lifecycle``, ``outbox␟delivery id`` → the ``deliveries`` message
=================  ==============================================================================

The ``treasury-state`` table (symbol → ``{"v", "ref", "holdings", "engine", "input"}``) is not a
kind here: ``streams/treasury_processor.py`` versions it itself (``STATE_VERSION``;
``TreasuryProcessor.from_record`` reads unversioned records and refuses newer ones), and a second
migration here would be a second place to keep in step with it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from cpwatch.exceptions import CpwatchError

VERSION_KEY = "v"
SEP = "\x1f"  # the alert-lifecycle table's key separator (notify/lifecycle.py)

Migration = Callable[[Any], Any]


class StateVersionError(CpwatchError):
    """A stored record this code cannot read: unknown kind, newer version, or a bad shape."""


# kind -> {from_version: step to from_version + 1}
_STEPS: dict[str, dict[int, Migration]] = {}


def step(kind: str, from_version: int) -> Callable[[Migration], Migration]:
    """Register the migration of ``kind`` from ``from_version`` to ``from_version + 1``."""

    def register(fn: Migration) -> Migration:
        steps = _STEPS.setdefault(kind, {})
        if from_version in steps:
            raise ValueError(f"{kind}: migration from v{from_version} registered twice")
        steps[from_version] = fn
        return fn

    return register


def kinds() -> tuple[str, ...]:
    return tuple(sorted(_STEPS))


def current(kind: str) -> int:
    """The version records of ``kind`` are written in."""
    try:
        steps = _STEPS[kind]
    except KeyError:
        raise StateVersionError(f"unknown state kind {kind!r}") from None
    return max(steps) + 1


def version_of(payload: Any) -> int:
    """A record's version: its ``"v"`` field, 0 when it has none (or is not an object)."""
    if isinstance(payload, dict) and VERSION_KEY in payload:
        v = payload[VERSION_KEY]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise StateVersionError(f"bad state version {v!r}")
        return v
    return 0


def migrate(kind: str, payload: Any) -> Any:
    """``payload`` upgraded to the current version of ``kind`` (a new object; the input is
    left alone). ``None`` (a table's default, a deleted key) stays ``None``."""
    target = current(kind)
    if payload is None:
        return None
    version = version_of(payload)
    if version > target:
        raise StateVersionError(
            f"{kind} state is version {version}; this code reads up to {target}: upgrade the "
            "worker (or roll it back together with its changelog topics)"
        )
    out = copy.deepcopy(payload)
    while version < target:
        out = _STEPS[kind][version](out)
        version += 1
    return out


def fields(kind: str, payload: Any) -> Any:
    """``payload`` migrated (``migrate``) and without its version key: the record's own
    fields, as the code that reads it wants them. ``None`` stays ``None``; a record that is
    not an object after migration is returned as it is."""
    record = migrate(kind, payload)
    if not isinstance(record, dict):
        return record
    return {k: v for k, v in record.items() if k != VERSION_KEY}


def lifecycle_kind(key: bytes | str) -> str:
    """The kind of a record of the ``alert-lifecycle`` table, from its key."""
    text = key.decode() if isinstance(key, bytes) else key
    prefix = text.partition(SEP)[0]
    found = {
        "lifecycle": "lifecycle",
        "digest": "digest-group",
        "sent": "digest-sent",
        "outbox": "digest-outbox",
    }.get(prefix)
    if found is None:
        raise StateVersionError(f"alert-lifecycle key of no known kind: {text[:60]!r}")
    return found


# ---------------------------------------------------------------- v0 -> v1


def _object(kind: str, payload: Any, required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise StateVersionError(f"{kind} v0 must be an object, not {type(payload).__name__}")
    missing = [k for k in required if k not in payload]
    if missing:
        raise StateVersionError(f"{kind} v0 lacks {', '.join(missing)}")
    return {**payload, VERSION_KEY: 1}


def _number(kind: str, payload: Any, *, integer: bool) -> float | int:
    ok = (int,) if integer else (int, float)
    if isinstance(payload, bool) or not isinstance(payload, ok):
        raise StateVersionError(f"{kind} v0 must be a number, not {payload!r}")
    return payload


@step("positions", 0)
def _positions_v1(p: Any) -> dict[str, Any]:
    return {VERSION_KEY: 1, "offset": _number("positions", p, integer=True)}


@step("story-entry", 0)
def _story_v1(p: Any) -> dict[str, Any]:
    return _object("story-entry", p, ("id", "cluster", "sig", "ts"))


@step("lifecycle", 0)
def _lifecycle_v1(p: Any) -> dict[str, Any]:
    return _object("lifecycle", p, ("seen", "incidents"))


@step("digest-group", 0)
def _digest_group_v1(p: Any) -> dict[str, Any]:
    return _object("digest-group", p, ("sub", "flush_at", "items"))


@step("digest-sent", 0)
def _digest_sent_v1(p: Any) -> dict[str, Any]:
    return {VERSION_KEY: 1, "at": float(_number("digest-sent", p, integer=False))}


@step("digest-outbox", 0)
def _digest_outbox_v1(p: Any) -> dict[str, Any]:
    return _object("digest-outbox", p, ("id", "subscription", "items"))
