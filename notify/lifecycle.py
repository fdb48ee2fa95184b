"""Alert lifecycle per subscription (firing, re-alert, resolved) and digest grouping. Pure.

Incidents: an alert is one crossing of (rule, holder) in a direction. It opens the incident
(rule, holder, direction) and resolves the opposite one, (rule, holder, other direction), if
open. A two-sided level rule thus fires "down" when the value falls below its threshold, and
the next rise resolves that incident (and opens the "up" one). One-sided rules (``direction:
down``) never emit the recovery, so each new crossing replaces the open incident, as does any
new crossing in the same direction (the rule only re-emits after re-arming).

Per subscription: "firing" at once (or when its silence ends), "realert" every
``realert_window`` while the incident stays open, "resolved" once and only to subscribers told
it was firing. A fingerprint seen before (Kafka redelivery, replay) is a duplicate. Silenced
and duplicate notifications are not returned but kept for ``drain_suppressed``.
All times are explicit ``now`` arguments; state is JSON-ready and bounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

from cpwatch.records import stable_id
from notify.subscriptions import Subscription
from streams.alerts import Alert, iso_utc

Kind = Literal["firing", "realert", "resolved"]
SEP = "\x1f"


@dataclass(frozen=True, slots=True)
class Notification:
    """One message owed to one subscriber about one incident."""

    subscription: str
    kind: Kind
    alert: Alert  # the opening crossing; for "resolved" the crossing that resolved it
    incident: str  # fingerprint of the alert that opened the incident
    at: datetime
    rule_type: str | None = None  # level, below_cost, ...: says what the threshold measures

    @property
    def delivery_id(self) -> str:
        """Idempotency key: the same notification retried or replayed keeps its id."""
        when = iso_utc(self.at) if self.kind == "realert" else ""
        return stable_id(self.subscription, self.incident, self.kind, when)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "incident": self.incident,
            "subscription": self.subscription,
            "at": iso_utc(self.at),
            "rule_type": self.rule_type,
            "alert": self.alert.to_message(),
        }


@dataclass(frozen=True, slots=True)
class Suppressed:
    subscription: str | None  # None: a duplicate, suppressed for everyone
    reason: Literal["duplicate", "silenced"]
    kind: Kind
    fingerprint: str
    at: datetime


def _opposite(alert: Alert) -> str:
    return SEP.join((alert.rule, alert.holder, "up" if alert.direction == "down" else "down"))


class LifecycleTracker:
    """State: ``{"version": 1, "seen": [fingerprint...], "incidents": {"rule␟holder␟dir":
    {"alert": {...}, "subs": {sub_id: last_notified_epoch | None}}}}`` (None: owed, silenced)."""

    def __init__(
        self,
        subscriptions: Iterable[Subscription] = (),
        rule_types: Mapping[str, str] | None = None,
        *,
        state: dict[str, Any] | None = None,
        max_incidents: int = 10_000,
        max_seen: int = 100_000,
        max_suppressed: int = 1_000,
    ) -> None:
        self.subs = {s.id: s for s in subscriptions}
        self.rule_types = dict(rule_types or {})  # rule id -> level|below_cost|...
        self.max_incidents, self.max_seen = max_incidents, max_seen
        self._seen: dict[str, None] = dict.fromkeys((state or {}).get("seen", ()))
        self._incidents: dict[str, dict[str, Any]] = {
            k: {"alert": Alert.from_dict(v["alert"]), "subs": dict(v["subs"])}
            for k, v in (state or {}).get("incidents", {}).items()
        }
        self._suppressed: deque[Suppressed] = deque(maxlen=max_suppressed)

    def set_subscriptions(self, subscriptions: Iterable[Subscription]) -> None:
        self.subs = {s.id: s for s in subscriptions}

    def observe(self, alert: Alert, now: datetime) -> list[Notification]:
        """Notifications owed for a new alert: resolutions of the opposite incident, then firing."""
        fp = alert.fingerprint
        if fp in self._seen:
            self._suppressed.append(Suppressed(None, "duplicate", "firing", fp, now))
            return []
        self._remember(fp)
        out: list[Notification] = []
        resolved = self._incidents.pop(_opposite(alert), None)
        if resolved is not None:
            opened: Alert = resolved["alert"]
            for sid, last in resolved["subs"].items():
                sub = self.subs.get(sid)
                if sub is None or last is None:  # gone, or never told it was firing
                    continue
                out.extend(self._owe(sub, "resolved", alert, opened.fingerprint, now))
        subs: dict[str, float | None] = {}
        for sub in self.subs.values():
            if sub.matches_alert(alert, self.rule_types.get(alert.rule)):
                sent = self._owe(sub, "firing", alert, fp, now)
                subs[sub.id] = now.timestamp() if sent else None
                out.extend(sent)
        key = SEP.join((alert.rule, alert.holder, alert.direction))
        self._incidents.pop(key, None)  # re-insert: dict order is age order for eviction
        self._incidents[key] = {"alert": alert, "subs": subs}
        while len(self._incidents) > self.max_incidents:
            del self._incidents[next(iter(self._incidents))]
        return out

    def tick(self, now: datetime) -> list[Notification]:
        """Re-alerts due (and firings owed since a silence ended) for incidents still open."""
        out: list[Notification] = []
        for inc in self._incidents.values():
            alert: Alert = inc["alert"]
            for sid, last in list(inc["subs"].items()):
                sub = self.subs.get(sid)
                if sub is None:
                    del inc["subs"][sid]
                elif sub.silenced(now):
                    continue  # recorded once when it fired; no record per tick
                elif last is None:
                    out.append(self._note(sid, "firing", alert, alert.fingerprint, now))
                    inc["subs"][sid] = now.timestamp()
                elif now.timestamp() - last >= sub.realert_window.total_seconds():
                    out.append(self._note(sid, "realert", alert, alert.fingerprint, now))
                    inc["subs"][sid] = now.timestamp()
        return out

    def drain_suppressed(self) -> list[Suppressed]:
        """Suppressed notifications since the last call, for the bookkeeping index."""
        items = list(self._suppressed)
        self._suppressed.clear()
        return items

    def open_incidents(self) -> list[Alert]:
        return [inc["alert"] for inc in self._incidents.values()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "seen": list(self._seen),
            "incidents": {
                k: {"alert": v["alert"].to_dict(), "subs": dict(v["subs"])}
                for k, v in self._incidents.items()
            },
        }

    def _owe(
        self, sub: Subscription, kind: Kind, alert: Alert, incident: str, now: datetime
    ) -> list[Notification]:
        if sub.silenced(now):
            self._suppressed.append(Suppressed(sub.id, "silenced", kind, alert.fingerprint, now))
            return []
        return [self._note(sub.id, kind, alert, incident, now)]

    def _note(
        self, sid: str, kind: Kind, alert: Alert, incident: str, now: datetime
    ) -> Notification:
        return Notification(sid, kind, alert, incident, now, self.rule_types.get(alert.rule))

    def _remember(self, fp: str) -> None:
        self._seen[fp] = None
        while len(self._seen) > self.max_seen:
            del self._seen[next(iter(self._seen))]


# ---------------------------------------------------------------- digests

T = TypeVar("T")
Timing = Callable[[str], tuple[timedelta, timedelta]]  # sub id -> (group_wait, group_interval)
DEFAULT_TIMING = (timedelta(seconds=10), timedelta(minutes=1))
GROUP_LABELS = ("rule", "direction", "holder", "rule_type", "kind")
DEFAULT_GROUP_BY = ("rule", "direction")


def group_labels(item: object, group_by: Iterable[str]) -> str:
    """The group an item falls in, Alertmanager style: the values of its ``group_by`` labels.
    Policy events carry none of the alert labels, so they form a group of their own."""
    if isinstance(item, Notification):
        a = item.alert
        labels = {
            "rule": a.rule,
            "direction": a.direction,
            "holder": a.holder,
            "rule_type": item.rule_type or "",
            "kind": item.kind,
        }
    else:
        labels = {"kind": "event"}
    return SEP.join(f"{k}={labels.get(k, '')}" for k in group_by)


@dataclass
class _Group(Generic[T]):
    sub: str
    flush_at: datetime
    items: list[T] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # item keys: a replayed item is not re-added
    flushed: bool = False


class DigestGrouper(Generic[T]):
    """Alertmanager-style batching per subscriber and group (``group_by`` label values).

    The first item opens a group, flushed ``group_wait`` later. After a flush, items arriving
    within ``group_interval`` go out together at the end of that interval; an interval with no
    items closes the group, so the next item waits ``group_wait`` again. A group reaching
    ``max_items`` is due at once (memory stays bounded, nothing is dropped). Groups can be
    snapshotted and restored (``snapshot``/``restore``) so a restart resumes them.
    """

    def __init__(self, timing: Timing | None = None, *, max_items: int = 100) -> None:
        self._timing: Timing = timing or (lambda _sid: DEFAULT_TIMING)
        self.max_items = max_items
        self._groups: dict[str, _Group[T]] = {}
        self._dirty: set[str] = set()

    @classmethod
    def for_subscriptions(cls, subs: Mapping[str, Subscription], **kw: Any) -> DigestGrouper[T]:
        def timing(sid: str) -> tuple[timedelta, timedelta]:
            sub = subs.get(sid)
            return (sub.group_wait, sub.group_interval) if sub else DEFAULT_TIMING

        return cls(timing, **kw)

    def add(
        self, sub_id: str, item: T, now: datetime, *, group: str = "", key: str | None = None
    ) -> bool:
        """Add ``item`` to the subscriber's group ``group``; False if ``key`` is already there."""
        gk = sub_id + SEP + group
        g = self._groups.get(gk)
        if g is None or (g.flushed and not g.items and now >= g.flush_at):
            g = self._groups[gk] = _Group(sub_id, now + self._timing(sub_id)[0])
        if key is not None:
            if key in g.keys:
                return False
            g.keys.append(key)
        g.items.append(item)
        if len(g.items) >= self.max_items:
            g.flush_at = min(g.flush_at, now)
        self._dirty.add(gk)
        return True

    def due_groups(self, now: datetime) -> list[tuple[str, str, list[T]]]:
        """(group key, subscription, items) of the groups whose time has come."""
        out: list[tuple[str, str, list[T]]] = []
        for gk, g in list(self._groups.items()):
            if now < g.flush_at:
                continue
            self._dirty.add(gk)
            if g.items:
                out.append((gk, g.sub, g.items))
                g.items, g.keys, g.flushed = [], [], True
                g.flush_at = now + self._timing(g.sub)[1]
            else:
                del self._groups[gk]  # a quiet interval closes the group
        return out

    def due(self, now: datetime) -> list[tuple[str, list[T]]]:
        """Groups whose time has come, as (subscription, items in arrival order)."""
        return [(sid, items) for _gk, sid, items in self.due_groups(now)]

    def next_due(self) -> datetime | None:
        """When ``due`` next has work: lets the agent sleep instead of polling."""
        return min((g.flush_at for g in self._groups.values()), default=None)

    def take_dirty(self) -> list[str]:
        """Group keys changed (or closed) since the last call: what to persist."""
        out = sorted(self._dirty)
        self._dirty.clear()
        return out

    def snapshot(self, gk: str, encode: Callable[[T], Any]) -> dict[str, Any] | None:
        """JSON-ready state of one group, None once it is closed."""
        g = self._groups.get(gk)
        if g is None:
            return None
        return {
            "sub": g.sub,
            "flush_at": g.flush_at.timestamp(),
            "flushed": g.flushed,
            "items": [encode(i) for i in g.items],
            "keys": list(g.keys),
        }

    def restore(self, gk: str, state: Mapping[str, Any], decode: Callable[[Any], T]) -> None:
        self._groups[gk] = _Group(
            str(state["sub"]),
            datetime.fromtimestamp(float(state["flush_at"]), UTC),
            [decode(i) for i in state["items"]],
            [str(k) for k in state.get("keys", ())],
            bool(state.get("flushed")),
        )

    def __len__(self) -> int:
        return sum(len(g.items) for g in self._groups.values())
