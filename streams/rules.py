"""Treasury threshold rules: YAML config model and the one pure engine (stream and backtest).

A rules file is ``{"rules": [ {id, holder, type, ...params}, ... ]}``; see
``deploy/rules.example.yaml``. ``RuleEngine`` applies the rules per holder in event time, with
state per (rule, holder) kept as plain JSON-ready dicts so a Faust table can hold it.
"""

from __future__ import annotations

import copy
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from cpwatch.exceptions import ConfigError
from cpwatch.records import HoldingUpdate
from streams.alerts import Alert, Direction

DEFAULT_SYMBOL = "BTC-USD"
ALL_HOLDERS = "*"
RULE_TYPES = ("level", "below_cost", "pct_move", "drawdown")

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_window(value: object) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w`` -> timedelta (positive)."""
    if isinstance(value, timedelta):
        window = value
    elif isinstance(value, str) and (m := _WINDOW.match(value)):
        window = timedelta(seconds=float(m[1]) * _UNIT_S[m[2]])
    else:
        raise ValueError(
            f"invalid window {value!r}: write a number and a unit s, m, h, d or w (e.g. 24h, 7d)"
        )
    if window <= timedelta(0):
        raise ValueError("window must be positive")
    return window


Window = Annotated[timedelta, BeforeValidator(parse_window)]
Fraction = Annotated[float, Field(ge=0, lt=1)]


class _Rule(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, str_strip_whitespace=True
    )
    id: str = Field(min_length=1, max_length=200)
    holder: str = Field(min_length=1, max_length=200, description='holder id, or "*" for all')
    direction: Literal["up", "down", "both"] = "both"

    def applies_to(self, holder: str) -> bool:
        return self.holder == ALL_HOLDERS or self.holder == holder

    def wants(self, direction: Direction) -> bool:
        return self.direction == "both" or self.direction == direction


class LevelRule(_Rule):
    """Holder value crosses ``threshold_usd`` (with hysteresis as a fraction of it)."""

    type: Literal["level"]
    threshold_usd: float = Field(gt=0)
    hysteresis: Fraction = 0.0


class BelowCostRule(_Rule):
    """BTC price crosses the holder's ``avg_cost_usd`` in force; holders without one are skipped."""

    type: Literal["below_cost"]
    hysteresis: Fraction = 0.0


class PctMoveRule(_Rule):
    """Value moved by ``pct`` percent or more against the value one ``window`` earlier."""

    type: Literal["pct_move"]
    window: Window
    pct: float = Field(gt=0)


class DrawdownRule(_Rule):
    """Value fell ``pct`` percent below its running peak; re-arms at a new high."""

    type: Literal["drawdown"]
    pct: float = Field(gt=0, lt=100)


Rule = Annotated[
    LevelRule | BelowCostRule | PctMoveRule | DrawdownRule, Field(discriminator="type")
]
_RULE: TypeAdapter[Rule] = TypeAdapter(Rule)


def _describe(err: Any) -> str:
    kind, loc = err["type"], [str(p) for p in err["loc"]]
    if kind == "union_tag_not_found":
        return f"field 'type': missing; use one of {', '.join(RULE_TYPES)}"
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        return f"field 'type': unknown rule type {tag!r}; use one of {', '.join(RULE_TYPES)}"
    where = ".".join(loc[1:]) if loc and loc[0] in RULE_TYPES else ".".join(loc)
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        msg = "unknown field for this rule type"
    return f"field '{where or '<rule>'}': {msg}"


def parse_rules(text: str, source: str = "<rules>") -> tuple[Rule, ...]:
    """Validate a rules YAML document; every problem is reported, each naming rule and field."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise ConfigError(f"{source}: expected a top-level 'rules:' list")
    rules: list[Rule] = []
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for i, raw in enumerate(doc["rules"]):
        rid = raw.get("id") if isinstance(raw, dict) else None
        label = f"rules[{i}]" + (f" (id {rid!r})" if isinstance(rid, str) and rid else "")
        if not isinstance(raw, dict):
            problems.append(f"{label}: expected a mapping of fields, got {type(raw).__name__}")
            continue
        try:
            rule = _RULE.validate_python(raw)
        except ValidationError as exc:
            problems.extend(f"{label}: {_describe(e)}" for e in exc.errors())
            continue
        if rule.id in first_index:
            problems.append(f"{label}: field 'id': duplicate of rules[{first_index[rule.id]}]")
            continue
        first_index[rule.id] = i
        rules.append(rule)
    if problems:
        raise ConfigError(f"{source}: invalid rules file:\n  " + "\n  ".join(problems))
    return tuple(rules)


def load_rules(path: Path) -> tuple[Rule, ...]:
    """Read and validate a rules file (the only I/O in this module)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read rules file: {exc}") from exc
    return parse_rules(text, source=str(path))


# ---------------------------------------------------------------- engine
# A step takes (rule, its state for this holder, observation), mutates that state and may return
# an alert. State holds only JSON types; event times are epoch seconds for cheap comparisons.


class Observation(NamedTuple):
    """One holder valued at one event time, shared by its rules (a tuple: cheap on the hot path)."""

    ts: datetime
    t: float  # ts as epoch seconds
    price: float
    holding: HoldingUpdate
    value: float  # btc x price

    def alert(self, rule: _Rule, d: Direction, threshold: float) -> Alert:
        h = self.holding
        return Alert(rule.id, h.holder, self.ts, d, self.value, threshold, self.price, h.btc)


Step = Callable[[Any, dict[str, Any], Observation], "Alert | None"]


def _cross(state: dict[str, Any], x: float, level: float, h: float) -> Direction | None:
    """Two-sided state machine with hysteresis; the first observation only sets the side."""
    side = state.get("side")
    # T + T*h, not T*(1+h): 100*(1+0.1) is 110.00000000000001 and 110 would not cross
    if side is None:
        state["side"] = "above" if x >= level else "below"
    elif side == "below" and x >= level + level * h:
        state["side"] = "above"
        return "up"
    elif side == "above" and x < level - level * h:
        state["side"] = "below"
        return "down"
    return None


def _level(rule: LevelRule, st: dict[str, Any], o: Observation) -> Alert | None:
    d = _cross(st, o.value, rule.threshold_usd, rule.hysteresis)
    return o.alert(rule, d, rule.threshold_usd) if d and rule.wants(d) else None


def _below_cost(rule: BelowCostRule, st: dict[str, Any], o: Observation) -> Alert | None:
    cost = o.holding.avg_cost_usd
    if cost is None:
        return None
    d = _cross(st, o.price, cost, rule.hysteresis)
    return o.alert(rule, d, cost) if d and rule.wants(d) else None


def _pct_move(rule: PctMoveRule, st: dict[str, Any], o: Observation) -> Alert | None:
    w = rule.window.total_seconds()
    hist: list[list[float]] = st.setdefault("hist", [])  # [[t, value], ...] oldest first
    i = bisect_right(hist, o.t - w, key=itemgetter(0)) - 1
    found: Alert | None = None
    if i >= 0:
        del hist[:i]  # older points can never be a reference again: time only moves forward
        ref = hist[0][1]
        change = (o.value - ref) / ref * 100 if ref > 0 else 0.0
        d: Direction | None = (
            "up" if change >= rule.pct else "down" if change <= -rule.pct else None
        )
        if d and rule.wants(d) and o.t >= st.get(f"quiet_{d}", -math.inf):
            st[f"quiet_{d}"] = o.t + w  # cool-down: one alert per direction per window
            found = o.alert(rule, d, ref)
    hist.append([o.t, o.value])
    return found


def _drawdown(rule: DrawdownRule, st: dict[str, Any], o: Observation) -> Alert | None:
    peak, value = st.get("peak"), o.value
    if peak is None:
        st["peak"], st["in_dd"] = value, False
        return None
    d: Direction | None = None
    threshold = 0.0
    if not st["in_dd"]:
        floor = peak * (1 - rule.pct / 100)
        if peak > 0 and value <= floor:
            st["in_dd"], d, threshold = True, "down", floor
    elif value >= peak:  # a new high ends the drawdown and re-arms the rule
        st["in_dd"], d, threshold = False, "up", peak
    st["peak"] = max(peak, value)
    return o.alert(rule, d, threshold) if d and rule.wants(d) else None


_STEPS: dict[str, Step] = {
    "level": _level,
    "below_cost": _below_cost,
    "pct_move": _pct_move,
    "drawdown": _drawdown,
}


class RuleEngine:
    """Applies rules per holder in event time; out-of-order prices are counted and dropped.

    State (``to_dict``)::

        {"version": 1, "dropped": int, "last_ts": {symbol: epoch_s},
         "rules": {rule_id: {holder: {...per-type state...}}}}

    Per-type state: level/below_cost ``{"side": "above"|"below"}``; pct_move
    ``{"hist": [[epoch_s, value], ...], "quiet_up": epoch_s, "quiet_down": epoch_s}``;
    drawdown ``{"peak": float, "in_dd": bool}``. State of rule ids no longer configured is dropped.
    """

    def __init__(self, rules: Sequence[Rule], state: dict[str, Any] | None = None) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        data = copy.deepcopy(state) if state else {}
        self.dropped: int = int(data.get("dropped", 0))
        self.evaluations: int = 0
        self._last_ts: dict[str, float] = dict(data.get("last_ts", {}))
        saved = data.get("rules", {})
        self._state: dict[str, dict[str, dict[str, Any]]] = {
            r.id: saved.get(r.id, {}) for r in self.rules
        }
        self._by_holder: dict[str, list[tuple[Rule, Step, dict[str, dict[str, Any]]]]] = {}

    def _rules_for(self, holder: str) -> list[tuple[Rule, Step, dict[str, dict[str, Any]]]]:
        found = self._by_holder.get(holder)
        if found is None:  # file order, cached per holder: the hot path only loops
            found = [
                (r, _STEPS[r.type], self._state[r.id]) for r in self.rules if r.applies_to(holder)
            ]
            self._by_holder[holder] = found
        return found

    def on_price(
        self,
        ts: datetime,
        price: float,
        holdings: Iterable[HoldingUpdate],
        symbol: str = DEFAULT_SYMBOL,
    ) -> list[Alert]:
        """Evaluate a price at event time ``ts`` for the holdings in force then.

        Holders go in id order, rules in file order. A ts older than the last one accepted for
        ``symbol`` is dropped (``dropped`` += 1) so a late tick can never re-fire a crossing.
        """
        t = ts.timestamp() if ts.tzinfo is not None else _naive(ts)
        last = self._last_ts.get(symbol)
        if last is not None and t < last:
            self.dropped += 1
            return []
        self._last_ts[symbol] = t
        alerts: list[Alert] = []
        for holding in sorted(holdings, key=attrgetter("holder")):
            alerts.extend(self._evaluate(holding, ts, t, price))
        return alerts

    def last_time(self, symbol: str = DEFAULT_SYMBOL) -> float | None:
        """Event time (epoch s) of the last price accepted for ``symbol``, if any."""
        return self._last_ts.get(symbol)

    def rebase(self, holder: str) -> None:
        """Forget ``holder``'s state in every rule: its next observation starts afresh."""
        for states in self._state.values():
            states.pop(holder, None)

    def evaluate(self, holding: HoldingUpdate, ts: datetime, price: float) -> list[Alert]:
        """One holder, no out-of-order check: for callers that already ordered their input."""
        return self._evaluate(holding, ts, ts.timestamp() if ts.tzinfo else _naive(ts), price)

    def _evaluate(self, h: HoldingUpdate, ts: datetime, t: float, price: float) -> list[Alert]:
        obs = Observation(ts, t, price, h, h.btc * price)
        alerts = []
        for rule, step, states in self._rules_for(h.holder):
            st = states.get(h.holder)
            if st is None:
                st = states[h.holder] = {}
            self.evaluations += 1
            alert = step(rule, st, obs)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(
            {"version": 1, "dropped": self.dropped, "last_ts": self._last_ts, "rules": self._state}
        )

    @classmethod
    def from_dict(cls, rules: Sequence[Rule], data: dict[str, Any]) -> RuleEngine:
        return cls(rules, state=data)


def _naive(ts: datetime) -> float:
    raise ValueError(f"naive datetime {ts.isoformat()}: rules run on timezone-aware event times")
