"""Pins the `cpwatch backtest` contract on small CSVs: output, order, errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from app.cli import app
from streams.backtest import backtest_command

HEADER = "holder,kind,country,btc,as_of,avg_cost_usd,source_url,note\n"
KEYS = ["rule", "holder", "ts", "direction", "value_usd", "threshold_usd", "price", "btc"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    prices = "date,open,high,low,close,volume\n" + "".join(
        f"2024-03-0{d},0,0,0,{c},0\n" for d, c in [(1, 100), (2, 200), (3, 90), (4, 120), (5, 120)]
    )
    holdings = HEADER + (
        "Zed,company,US,10,2024-03-01,150,,\n"
        "Alpha,state,SV,4,2024-03-01,,,\n"
        'Alpha,state,SV,20,2024-03-04,,,"note, quoted"\n'  # applies from the 4th on
    )
    rules = (
        "rules:\n"
        "  - {id: lvl, holder: '*', type: level, threshold_usd: 1500}\n"
        "  - {id: cost, holder: '*', type: below_cost}\n"
    )
    return {
        "prices": write(tmp_path, "prices.csv", prices),
        "holdings": write(tmp_path, "holdings.csv", holdings),
        "rules": write(tmp_path, "rules.yaml", rules),
    }


def run(
    capsys: pytest.CaptureFixture[str], f: dict[str, Path]
) -> tuple[int, list[dict[str, object]], str]:
    code = backtest_command(f["prices"], f["holdings"], f["rules"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_output_lines_in_time_then_holder_then_rule_order(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, lines, err = run(capsys, files)
    assert code == 0
    assert all(list(line) == KEYS for line in lines)
    got = [
        (
            x["ts"],
            x["holder"],
            x["rule"],
            x["direction"],
            x["value_usd"],
            x["threshold_usd"],
            x["btc"],
        )
        for x in lines
    ]
    assert got == [
        # 03-01 is the first observation: Zed 1000 below 1500, price 100 below cost 150 (silent)
        # 03-02: Zed 10*200=2000 crosses up; price 200 >= cost 150 -> up (Alpha: 800, no cost)
        ("2024-03-02T00:00:00Z", "Zed", "lvl", "up", 2000.0, 1500.0, 10.0),
        ("2024-03-02T00:00:00Z", "Zed", "cost", "up", 2000.0, 150.0, 10.0),
        # 03-03: Zed 900 < 1500 down; price 90 < 150 down
        ("2024-03-03T00:00:00Z", "Zed", "lvl", "down", 900.0, 1500.0, 10.0),
        ("2024-03-03T00:00:00Z", "Zed", "cost", "down", 900.0, 150.0, 10.0),
        # 03-04: Alpha's new holding (20 BTC) is in force: 2400 up; Zed 1200 stays below
        ("2024-03-04T00:00:00Z", "Alpha", "lvl", "up", 2400.0, 1500.0, 20.0),
    ]
    assert "backtest: 5 price rows" in err


def test_ts_column_and_out_of_order_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    files["prices"] = write(
        tmp_path,
        "intraday.csv",
        (
            "ts,close\n"
            "2024-03-01T10:00:00Z,50\n"
            "2024-03-01T12:00:00+02:00,200\n"  # 10:00Z, same instant: accepted, Zed crosses up
            "2024-03-01T09:00:00Z,10\n"  # older than the last row: dropped, no down crossing
            "2024-03-01T11:30:00Z,60\n"
        ),
    )
    code, lines, err = run(capsys, files)
    assert code == 0
    assert [(x["ts"], x["rule"], x["direction"]) for x in lines] == [
        ("2024-03-01T10:00:00Z", "lvl", "up"),
        ("2024-03-01T10:00:00Z", "cost", "up"),
        ("2024-03-01T11:30:00Z", "lvl", "down"),
        ("2024-03-01T11:30:00Z", "cost", "down"),
    ]
    assert "1 row(s) older than an earlier row dropped" in err


def test_bad_rows_are_reported_skipped_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    files["prices"] = write(
        tmp_path,
        "p.csv",
        "date,close\n2024-03-01,100\n2024-03-02,abc\nnot-a-date,5\n2024-03-03,200\n2024-03-04\n",
    )
    files["holdings"] = write(
        tmp_path,
        "h.csv",
        HEADER
        + "Zed,company,US,10,2024-03-01,,,\n"
        + "Bad,company,US,1.2.3,2024-03-01,,,\n"
        + "Z2,bank,US,1,2024-03-01,,,\n",
    )
    code, lines, err = run(capsys, files)
    assert code == 1
    assert f"{files['prices']}:3: field 'close': not a number: 'abc'" in err
    assert f"{files['prices']}:4: field 'date'" in err
    assert f"{files['prices']}:6: bad CSV row" in err
    assert f"{files['holdings']}:3: field 'btc'" in err
    assert f"{files['holdings']}:4: field 'kind'" in err
    assert [(x["ts"], x["direction"]) for x in lines] == [
        ("2024-03-03T00:00:00Z", "up")
    ]  # rest processed


def test_empty_cost_is_none_and_empty_btc_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    files["holdings"] = write(
        tmp_path,
        "h.csv",
        HEADER + "Zed,company,US,10,2024-03-01,,,\nAnon,state,PK,,2024-03-01,,,\n",
    )
    code, lines, err = run(capsys, files)
    assert code == 0
    assert {x["rule"] for x in lines} == {"lvl"}  # below_cost skipped: no avg_cost_usd
    assert f"warning: {files['holdings']}:3: field 'btc' is empty" in err


@pytest.mark.parametrize(
    ("which", "text", "needle"),
    [
        ("prices", "date,open\n2024-03-01,1\n", "missing required column 'close'"),
        ("prices", "close\n1\n", "missing required column 'ts' or 'date'"),
        ("holdings", "holder,as_of\nA,2024-01-01\n", "missing required column 'btc'"),
        (
            "rules",
            "rules:\n  - {id: x, holder: '*', type: pct_move, window: 7 days, pct: 5}\n",
            "rules[0] (id 'x'): field 'window'",
        ),
        ("prices", "", "empty file"),
    ],
)
def test_fatal_input_exit_2_and_nothing_printed(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, Path],
    which: str,
    text: str,
    needle: str,
) -> None:
    files[which] = write(tmp_path, f"bad-{which}", text)
    code, lines, err = run(capsys, files)
    assert (code, lines) == (2, [])
    assert needle in err and str(files[which]) in err


def test_missing_file_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    files["prices"] = tmp_path / "nope.csv"
    code, _, err = run(capsys, files)
    assert code == 2 and "nope.csv" in err


def test_progress_bar_never_writes_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    import streams.backtest as bt

    monkeypatch.setattr(bt, "PROGRESS_MIN_ROWS", 0)
    monkeypatch.setattr(bt, "Console", lambda stderr: Console(stderr=stderr, force_terminal=True))
    code, lines, err = run(capsys, files)
    assert code == 0 and len(lines) == 5  # stdout parsed as pure JSON lines
    assert "backtest" in err


def test_cli_wiring(files: dict[str, Path]) -> None:
    args = [
        "backtest",
        "--prices",
        str(files["prices"]),
        "--holdings",
        str(files["holdings"]),
        "--rules",
        str(files["rules"]),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0
    assert [json.loads(x)["ts"] for x in result.stdout.splitlines()][:1] == ["2024-03-02T00:00:00Z"]
