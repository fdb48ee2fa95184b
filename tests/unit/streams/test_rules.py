"""Pins the rule semantics of streams.rules (config validation and the pure engine)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpwatch.exceptions import ConfigError
from cpwatch.records import HoldingUpdate
from streams.alerts import Alert
from streams.rules import RuleEngine, load_rules, parse_rules, parse_window

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def holding(
    btc: float = 1.0, holder: str = "H", cost: float | None = None, as_of: int = 0
) -> HoldingUpdate:
    return HoldingUpdate(
        holder=holder, kind="company", btc=btc, as_of=day(as_of), avg_cost_usd=cost
    )


def rules_yaml(*rules: dict[str, Any]) -> str:
    return json.dumps({"rules": list(rules)})  # JSON is YAML


def engine(**rule: Any) -> RuleEngine:
    base = {"id": "r", "holder": "*"}
    return RuleEngine(parse_rules(rules_yaml({**base, **rule})))


def run(eng: RuleEngine, prices: list[float], h: HoldingUpdate | None = None) -> list[Alert]:
    """Feed one price per day; with btc=1 the value equals the price."""
    h = h or holding()
    return [a for i, p in enumerate(prices) for a in eng.on_price(day(i), p, [h])]


def dirs(alerts: list[Alert]) -> list[str]:
    return [a.direction for a in alerts]


# ---------------------------------------------------------------- config


def test_windows_parse() -> None:
    assert parse_window("24h") == timedelta(hours=24)
    assert parse_window("7d") == timedelta(days=7)
    assert parse_window("30m") == timedelta(minutes=30)
    assert parse_window("90s") == timedelta(seconds=90)


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        (
            {"id": "w", "holder": "*", "type": "pct_move", "window": "5x", "pct": 5},
            "rules[0] (id 'w'): field 'window'",
        ),
        (
            {"id": "w", "holder": "*", "type": "pct_move", "window": "0h", "pct": 5},
            "field 'window': window must be positive",
        ),
        (
            {"id": "p", "holder": "*", "type": "pct_move", "window": "1d"},
            "rules[0] (id 'p'): field 'pct': Field required",
        ),
        (
            {"id": "t", "holder": "*", "type": "level", "threshold_usd": -1},
            "(id 't'): field 'threshold_usd'",
        ),
        (
            {"id": "t", "holder": "*", "type": "level", "threshold_usd": "lots"},
            "field 'threshold_usd'",
        ),
        (
            {"id": "h", "holder": "*", "type": "level", "threshold_usd": 1, "hysteresis": 1.5},
            "field 'hysteresis'",
        ),
        (
            {
                "id": "d",
                "holder": "*",
                "type": "level",
                "threshold_usd": 1,
                "direction": "sideways",
            },
            "field 'direction'",
        ),
        (
            {"id": "x", "holder": "*", "type": "volcano"},
            "(id 'x'): field 'type': unknown rule type 'volcano'",
        ),
        ({"id": "x", "holder": "*"}, "(id 'x'): field 'type': missing"),
        ({"holder": "*", "type": "drawdown", "pct": 5}, "rules[0]: field 'id': Field required"),
        ({"id": "e", "type": "drawdown", "pct": 5}, "field 'holder': Field required"),
        (
            {"id": "e", "holder": "*", "type": "drawdown", "pct": 5, "thresold": 1},
            "field 'thresold': unknown field",
        ),
        ({"id": "e", "holder": "*", "type": "drawdown", "pct": 150}, "(id 'e'): field 'pct'"),
    ],
)
def test_invalid_rule_names_rule_and_field(rule: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules(rules_yaml(rule), source="r.yaml")
    assert needle in str(info.value)
    assert str(info.value).startswith("r.yaml: ")


def test_error_names_index_of_later_rule_and_duplicate_ids() -> None:
    ok = {"id": "a", "holder": "*", "type": "drawdown", "pct": 5}
    bad = {"holder": "*", "type": "drawdown", "pct": "x"}
    with pytest.raises(ConfigError) as info:
        parse_rules(rules_yaml(ok, bad, ok))
    assert "rules[1]: field 'pct'" in str(info.value)
    assert "rules[2] (id 'a'): field 'id': duplicate of rules[0]" in str(info.value)


@pytest.mark.parametrize("text", ["rules: 5", "other: []", "- a", "rules: [", ""])
def test_bad_document_shape(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_rules(text)


def test_load_example_file_and_yaml_spelling(tmp_path: Path) -> None:
    example = Path(__file__).parents[3] / "deploy" / "rules.example.yaml"
    assert {r.type for r in load_rules(example)} == {"level", "below_cost", "pct_move", "drawdown"}
    f = tmp_path / "r.yaml"
    f.write_text(
        "rules:\n  - id: es\n    holder: El Salvador\n"
        "    type: level\n    threshold_usd: 500_000_000\n"
    )
    (rule,) = load_rules(f)
    assert rule.threshold_usd == 500_000_000 and rule.direction == "both" and rule.hysteresis == 0  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


# ---------------------------------------------------------------- level


def test_level_first_observation_is_silent_and_sets_side() -> None:
    assert run(engine(type="level", threshold_usd=100), [150, 160, 170]) == []
    assert dirs(run(engine(type="level", threshold_usd=100), [150, 90])) == ["down"]
    assert dirs(run(engine(type="level", threshold_usd=100), [100, 99.9])) == [
        "down"
    ]  # == T is above


def test_level_crossings_and_alert_fields() -> None:
    alerts = run(engine(type="level", threshold_usd=100), [90, 100, 120, 99, 98, 101])
    assert dirs(alerts) == ["up", "down", "up"]
    up = alerts[0]
    assert (up.rule, up.holder, up.ts, up.value_usd, up.threshold_usd, up.price, up.btc) == (
        "r",
        "H",
        day(1),
        100,
        100,
        100,
        1,
    )


def test_level_hysteresis() -> None:
    eng = engine(type="level", threshold_usd=100, hysteresis=0.1)
    # below: needs >= 110 to go up; above: needs < 90 to go down
    alerts = run(eng, [80, 105, 109.9, 110, 95, 90, 89.9, 100, 110])
    assert [(a.ts, a.direction) for a in alerts] == [
        (day(3), "up"),
        (day(6), "down"),
        (day(8), "up"),
    ]


@pytest.mark.parametrize(
    ("direction", "expected"),
    [("up", ["up", "up"]), ("down", ["down"]), ("both", ["up", "down", "up"])],
)
def test_level_direction_filter_but_side_always_moves(direction: str, expected: list[str]) -> None:
    eng = engine(type="level", threshold_usd=100, direction=direction)
    assert dirs(run(eng, [90, 110, 90, 110])) == expected


def test_level_on_holdings_change_between_ticks() -> None:
    eng = engine(type="level", threshold_usd=1000)
    before, after = holding(btc=5), holding(btc=20, as_of=1)
    assert eng.on_price(day(0), 100, [before]) == []  # 500: below
    (alert,) = eng.on_price(day(1), 100, [after])  # same price, 2000: above
    assert (alert.direction, alert.value_usd, alert.btc) == ("up", 2000, 20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=1, max_value=1e6), min_size=1, max_size=60), st.floats(0, 0.5))
def test_level_both_alternates(values: list[float], h: float) -> None:
    alerts = run(engine(type="level", threshold_usd=5e5, hysteresis=h), values)
    assert all(a.direction != b.direction for a, b in zip(alerts, alerts[1:], strict=False))
    if alerts:  # the first alert leaves the side set by the first observation
        assert alerts[0].direction == ("down" if values[0] >= 5e5 else "up")


# ---------------------------------------------------------------- below_cost


def test_below_cost_uses_price_against_cost_in_force() -> None:
    eng = engine(type="below_cost", hysteresis=0.1)
    h = holding(btc=2, cost=100)
    alerts = run(eng, [120, 95, 89, 105, 110], h)
    assert dirs(alerts) == ["down", "up"]
    down = alerts[0]
    assert (down.threshold_usd, down.value_usd, down.price) == (100, 178, 89)


def test_below_cost_skips_holders_without_cost_and_follows_new_cost() -> None:
    eng = engine(type="below_cost")
    assert run(eng, [50, 500, 50], holding(cost=None)) == []
    eng = engine(type="below_cost")
    assert eng.on_price(day(0), 100, [holding(cost=90)]) == []
    (a,) = eng.on_price(day(1), 100, [holding(cost=110, as_of=1)])  # cost raised above price
    assert (a.direction, a.threshold_usd) == ("down", 110)


# ---------------------------------------------------------------- pct_move


def test_pct_move_reference_is_latest_observation_at_or_before_window() -> None:
    eng = engine(type="pct_move", window="2d", pct=10)
    # day0 100, day1 105, day2 111 (vs day0: +11%) -> up, reference 100
    alerts = run(eng, [100, 105, 111])
    assert [(a.ts, a.direction, a.threshold_usd) for a in alerts] == [(day(2), "up", 100)]


def test_pct_move_no_reference_no_emit_and_down() -> None:
    eng = engine(type="pct_move", window="24h", pct=5)
    h = holding()
    assert eng.on_price(day(0), 100, [h]) == []
    assert eng.on_price(day(0.5), 50, [h]) == []  # nothing 24h old yet
    (a,) = eng.on_price(day(1.5), 80, [h])  # latest at or before day 0.5: the 50
    assert (a.direction, a.threshold_usd) == ("up", 50)
    (b,) = eng.on_price(day(2.5), 40, [h])  # reference day 1.5 (80): -50%
    assert (b.direction, b.threshold_usd) == ("down", 80)


def test_pct_move_cooldown_per_direction() -> None:
    eng = engine(type="pct_move", window="1d", pct=10)
    h = holding()
    ticks = [(0, 100), (1, 120), (1.5, 150), (2, 200), (2.5, 100), (3, 120)]
    got = [(a.ts, a.direction) for t, p in ticks for a in eng.on_price(day(t), p, [h])]
    # day1 up; day1.5 (+50% vs day0) silent until day2; day2 up again; day2.5 down (other direction)
    assert got == [(day(1), "up"), (day(2), "up"), (day(2.5), "down")]


def test_pct_move_history_is_bounded_by_window() -> None:
    eng = engine(type="pct_move", window="1h", pct=50)
    h = holding()
    for i in range(500):
        eng.on_price(T0 + timedelta(minutes=i), 100, [h])
    hist = eng.to_dict()["rules"]["r"]["H"]["hist"]
    assert 60 <= len(hist) <= 62


# ---------------------------------------------------------------- drawdown


def test_drawdown_down_then_rearm_on_new_high() -> None:
    eng = engine(type="drawdown", pct=20)
    alerts = run(eng, [100, 90, 80, 70, 85, 100, 120, 97, 96])
    assert [(a.ts, a.direction, a.threshold_usd) for a in alerts] == [
        (day(2), "down", 80),  # 80 <= 100 * 0.8
        (day(5), "up", 100),  # back at the peak: leaves drawdown
        (day(8), "down", 96),  # re-armed against the new peak 120: 97 > 96, then 96 <= 96
    ]


def test_drawdown_direction_filter_keeps_state() -> None:
    eng = engine(type="drawdown", pct=50, direction="down")
    assert dirs(run(eng, [100, 40, 100, 200, 90])) == ["down", "down"]


# ---------------------------------------------------------------- engine


def test_out_of_order_ticks_are_dropped_and_never_refire() -> None:
    eng = engine(type="level", threshold_usd=100)
    h = holding()
    assert eng.on_price(day(0), 90, [h]) == []
    assert dirs(eng.on_price(day(2), 110, [h])) == ["up"]
    assert eng.on_price(day(1), 90, [h]) == []  # late: would have been a down crossing
    assert eng.dropped == 1
    assert eng.on_price(day(2), 111, [h]) == []  # same ts is not "older": accepted, no crossing
    assert dirs(eng.on_price(day(3), 90, [h])) == ["down"]
    assert eng.on_price(day(0), 90, [h], symbol="ETH-USD") == []  # clocks are per symbol
    assert eng.dropped == 1


def test_holder_filter_order_and_naive_time() -> None:
    text = rules_yaml(
        {"id": "b", "holder": "B", "type": "level", "threshold_usd": 100},
        {"id": "all", "holder": "*", "type": "level", "threshold_usd": 100},
    )
    eng = RuleEngine(parse_rules(text))
    hs = [holding(holder="B"), holding(holder="A")]
    eng.on_price(day(0), 50, hs)
    alerts = eng.on_price(day(1), 150, hs)
    assert [(a.holder, a.rule) for a in alerts] == [("A", "all"), ("B", "b"), ("B", "all")]
    with pytest.raises(ValueError, match="naive"):
        eng.on_price(datetime(2024, 1, 5), 1, hs)  # noqa: DTZ001


def test_state_roundtrip_continues_identically() -> None:
    text = rules_yaml(
        {"id": "l", "holder": "*", "type": "level", "threshold_usd": 100, "hysteresis": 0.05},
        {"id": "c", "holder": "*", "type": "below_cost"},
        {"id": "p", "holder": "*", "type": "pct_move", "window": "2d", "pct": 10},
        {"id": "d", "holder": "*", "type": "drawdown", "pct": 15},
    )
    rules = parse_rules(text)
    prices = [90, 120, 80, 70, 130, 60, 140, 100, 50, 150]
    h = holding(cost=100)
    whole = RuleEngine(rules)
    expected = [a for i, p in enumerate(prices) for a in whole.on_price(day(i), p, [h])]
    first = RuleEngine(rules)
    got = [a for i, p in enumerate(prices[:5]) for a in first.on_price(day(i), p, [h])]
    state = json.loads(json.dumps(first.to_dict()))  # must survive JSON (Faust table)
    second = RuleEngine.from_dict(rules, state)
    got += [a for i, p in enumerate(prices[5:], 5) for a in second.on_price(day(i), p, [h])]
    assert got == expected and len(expected) > 5
    assert second.on_price(day(1), 1, [h]) == [] and second.dropped == 1


def test_alert_fingerprint_and_dict() -> None:
    a = Alert("r", "H", day(1), "up", 1.5, 1.0, 1.5, 1.0)
    b = Alert("r", "H", day(1), "up", 9.0, 9.0, 9.0, 9.0)
    assert a.fingerprint == b.fingerprint != Alert("r", "H", day(1), "down", 1, 1, 1, 1).fingerprint
    assert a.to_dict() == {
        "rule": "r",
        "holder": "H",
        "ts": "2024-01-02T00:00:00Z",
        "direction": "up",
        "value_usd": 1.5,
        "threshold_usd": 1.0,
        "price": 1.5,
        "btc": 1.0,
    }
    assert Alert.from_dict(a.to_message()) == a
