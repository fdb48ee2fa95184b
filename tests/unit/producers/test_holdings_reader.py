"""Pins producers.holdings_csv: CSV and YAML rows to HoldingUpdate, errors with file:line:field."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest

from cpwatch.records import HoldingUpdate
from producers.holdings_csv import HoldingsFormatError, read_holdings
from producers.summary import Bad

HEADER = "holder,kind,country,btc,as_of,avg_cost_usd,source_url,note\n"


def test_csv_row_mapping(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(
        HEADER + 'Bhutan,state,BT,13029,2024-09-16,,https://s.example/a,"a, note"\n'
        "Acme,company,us,100.5,2025-01-02,45000,https://s.example/b,\n"
    )
    a, b = list(read_holdings(path))
    assert a == HoldingUpdate(
        holder="Bhutan",
        name="Bhutan",
        kind="state",
        country="BT",
        btc=13029,
        as_of=datetime(2024, 9, 16, tzinfo=UTC),
        avg_cost_usd=None,
        source="https://s.example/a",
    )
    assert isinstance(b, HoldingUpdate)
    assert b.country == "US" and b.avg_cost_usd == 45000 and b.kind == "company"


def test_csv_errors_and_undisclosed_amounts(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(
        HEADER + "X,state,XX,1,2024-01-01,,,\n"
        "Y,bank,US,1,2024-01-01,,,\n"
        "Z,state,USA,1,2024-01-01,,,\n"
        "W,state,US,,2024-01-01,,,\n"
        "V,fund,,lots,2024-01-01,,,\n"
        "U,fund,,1,yesterday,,,\n"
    )
    items = list(read_holdings(path))
    assert isinstance(items[0], HoldingUpdate)
    bad = [i for i in items if isinstance(i, Bad)]
    assert [b.where for b in bad] == [
        f"{path}:3:kind",
        f"{path}:4:country",
        f"{path}:5",
        f"{path}:6:btc",
        f"{path}:7:as_of",
    ]
    assert bad[2].kind == "btc not disclosed" and not bad[2].payload
    assert bad[0].payload.startswith("Y,bank")


def test_yaml_list_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "h.yaml"
    path.write_text(
        "- holder: Bhutan\n  kind: state\n  country: BT\n  btc: 13029\n  as_of: 2024-09-16\n"
        "  source_url: https://s.example/a\n"
        "- holder: Broken\n  kind: state\n  btc: -1\n  as_of: 2024-09-16\n"
        "- just a string\n"
    )
    good, bad, worse = list(read_holdings(path))
    assert isinstance(good, HoldingUpdate)
    assert good.as_of == datetime(2024, 9, 16, tzinfo=UTC) and good.source == "https://s.example/a"
    assert isinstance(bad, Bad) and bad.where == f"{path}:7:btc"
    assert isinstance(worse, Bad) and worse.where == f"{path}:11"


def test_whole_file_errors(tmp_path: Path) -> None:
    for name, text in [("a.csv", "who,what\n"), ("b.yaml", "holder: x\n"), ("c.txt", "")]:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(HoldingsFormatError):
            list(read_holdings(path))


def test_bundled_treasuries_parse() -> None:
    path = Path(str(resources.files("cpwatch") / "data" / "treasuries.csv"))
    items = list(read_holdings(path))
    bad = [i for i in items if isinstance(i, Bad)]
    assert {b.kind for b in bad} <= {"btc not disclosed"}
    assert sum(isinstance(i, HoldingUpdate) for i in items) >= 60
