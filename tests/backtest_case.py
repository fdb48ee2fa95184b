"""What the stream owes for a treasury input: the alerts ``cpwatch backtest`` gives for it.

Stream tests write the input to their own directory, read it back as the backtest does and
compare the alerts the worker sent with the backtest's on the alert contract's fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpwatch.records import HoldingUpdate
from cpwatch.settings import Settings
from streams.backtest import PriceRow, read_holdings, read_prices, run_backtest
from streams.rules import RuleEngine, load_rules


@dataclass
class BacktestCase:
    settings: Settings  # the test's, with ``rules_file`` the written rules
    prices: list[PriceRow]
    holdings: list[HoldingUpdate]
    alerts: list[dict[str, Any]]  # the backtest's, as the stream serialises them


def backtest_case(
    settings: Settings,
    tmp_path: Path,
    rules: str,
    holdings_csv: str,
    write_prices: Callable[[Path], None],
) -> BacktestCase:
    """Write rules.yaml, holdings.csv and prices.csv to ``tmp_path`` and run the backtest on
    them; a row the backtest's readers reject fails the test."""
    (tmp_path / "rules.yaml").write_text(rules)
    (tmp_path / "holdings.csv").write_text(holdings_csv)
    write_prices(tmp_path / "prices.csv")
    s = settings.model_copy(update={"rules_file": tmp_path / "rules.yaml"})
    errors: list[str] = []
    prices = read_prices(tmp_path / "prices.csv", errors)
    holdings = read_holdings(tmp_path / "holdings.csv", errors, [])
    assert not errors, errors
    engine = RuleEngine(load_rules(s.rules_path))
    alerts = [a.to_dict() for a in run_backtest(prices, holdings, engine)]
    return BacktestCase(s, prices, holdings, alerts)


def assert_same_alerts(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """The alerts read back from the stream are ``expected``, in any order, compared on the
    fields the backtest gives (the stream's records may carry more)."""
    contract = [{k: a[k] for k in expected[0]} for a in got]
    assert sorted(contract, key=json.dumps) == sorted(expected, key=json.dumps)
