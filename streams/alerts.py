"""Alert: one threshold crossing, the record both the stream and `cpwatch backtest` emit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from cpwatch.records import SCHEMA_VERSION, stable_id

Direction = Literal["up", "down"]

#: The offline contract: `cpwatch backtest` prints exactly these keys, in this order.
ALERT_KEYS = ("rule", "holder", "ts", "direction", "value_usd", "threshold_usd", "price", "btc")


def iso_utc(ts: datetime) -> str:
    """The one timestamp spelling of alerts: ``2024-03-05T00:00:00Z`` (microseconds only if set)."""
    ts = ts.astimezone(UTC)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond:06d}"
    return text + "Z"


def parse_utc(text: str) -> datetime:
    """Inverse of ``iso_utc``; naive input is refused rather than guessed."""
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        raise ValueError(f"timestamp without timezone: {text!r}")
    return ts.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Alert:
    """A rule crossing for one holder at one event time."""

    rule: str
    holder: str
    ts: datetime
    direction: Direction
    value_usd: float
    threshold_usd: float
    price: float
    btc: float

    @property
    def fingerprint(self) -> str:
        """Deterministic id, blake2b of rule|holder|ts|direction: replays overwrite, not add."""
        return stable_id(self.rule, self.holder, iso_utc(self.ts), self.direction)

    def to_dict(self) -> dict[str, Any]:
        """The contract keys only, JSON-ready (``ts`` as ISO-8601 UTC)."""
        return {
            "rule": self.rule,
            "holder": self.holder,
            "ts": iso_utc(self.ts),
            "direction": self.direction,
            "value_usd": self.value_usd,
            "threshold_usd": self.threshold_usd,
            "price": self.price,
            "btc": self.btc,
        }

    def to_message(self) -> dict[str, Any]:
        """What goes on the alerts topic / into Elasticsearch: contract keys plus id and version."""
        return {**self.to_dict(), "fingerprint": self.fingerprint, "schema_version": SCHEMA_VERSION}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        direction = data["direction"]
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be up or down, not {direction!r}")
        return cls(
            rule=str(data["rule"]),
            holder=str(data["holder"]),
            ts=parse_utc(str(data["ts"])),
            direction=cast(Direction, direction),
            value_usd=float(data["value_usd"]),
            threshold_usd=float(data["threshold_usd"]),
            price=float(data["price"]),
            btc=float(data["btc"]),
        )


# ---------------------------------------------------------------- presentation

Measure = Literal["price", "value"]


def measure(rule_type: str | None) -> Measure:
    """What an alert's ``threshold_usd`` is compared with. A below-cost threshold is the
    holder's average cost per coin, so its peer is the BTC ``price``; every other rule's
    threshold is a holder value in USD, compared with ``value_usd``."""
    return "price" if rule_type == "below_cost" else "value"


def _ts(alert: Mapping[str, Any]) -> datetime:
    try:
        return parse_utc(str(alert.get("ts")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def firing(alerts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Alerts firing now, newest first: the latest crossing of each (rule, holder), unless
    acknowledged. That latest crossing is the open incident of streams/lifecycle (a crossing
    opens its direction and resolves the other); an ack takes it off the list. The dashboard's
    list and the ``cpwatch_alerts_firing`` gauge both come from here."""
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for alert in alerts:
        key = (str(alert.get("rule", "")), str(alert.get("holder", "")))
        if key not in latest or _ts(alert) > _ts(latest[key]):
            latest[key] = alert
    out = [a for a in latest.values() if not a.get("acked_at")]
    return sorted(out, key=_ts, reverse=True)
