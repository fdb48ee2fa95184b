"""`cpwatch backtest` with the columnar engine (default) and ``--engine scalar``; ``--plot``."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from streams.backtest import backtest_command

HEADER = "holder,kind,country,btc,as_of,avg_cost_usd,source_url,note\n"
RULES = (
    "rules:\n"
    "  - {id: lvl, holder: '*', type: level, threshold_usd: 1500, hysteresis: 0.05}\n"
    "  - {id: cost, holder: '*', type: below_cost}\n"
    "  - {id: move, holder: Zed, type: pct_move, window: 2d, pct: 20}\n"
    "  - {id: dd, holder: '*', type: drawdown, pct: 15, direction: down}\n"
)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rnd = random.Random(7)
    price, lines = 120.0, ["ts,close"]
    for i in range(400):
        price = max(20.0, price * (1 + rnd.gauss(0, 0.06)))
        day, hour = divmod(i - 3 if i % 53 == 52 else i, 24)  # every 53rd row is out of order
        lines.append(f"2024-03-{1 + day:02d}T{hour:02d}:00:00Z,{price:.2f}")
    holdings = HEADER + (
        "Zed,company,US,10,2024-03-01,150,,\n"
        "Alpha,state,SV,4,2024-03-01,,,\n"
        "Alpha,state,SV,20,2024-03-05,90,,\n"  # mid-run change of amount and cost
        "Zed,company,US,14,2024-03-09T12:00:00Z,140,,\n"
    )
    out = {"prices": tmp_path / "prices.csv", "holdings": tmp_path / "h.csv"}
    out["prices"].write_text("\n".join(lines) + "\n")
    out["holdings"].write_text(holdings)
    out["rules"] = tmp_path / "rules.yaml"
    out["rules"].write_text(RULES)
    return out


@pytest.mark.parametrize("after", [0, 150, 10_000])
def test_engines_print_the_same_lines(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], after: int
) -> None:
    outs = []
    for engine in ("scalar", "columnar"):
        code = backtest_command(
            files["prices"], files["holdings"], files["rules"], after, engine_name=engine
        )
        out, err = capsys.readouterr()
        assert code == 0, err
        outs.append((out, err))
    assert outs[0] == outs[1]  # alerts and the summary (evaluations, dropped rows) alike
    if after == 0:
        assert len(outs[0][0].splitlines()) > 10


def test_plot_png_and_html(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    png, page = tmp_path / "bt.png", tmp_path / "bt.html"
    for target in (png, page):
        code = backtest_command(files["prices"], files["holdings"], files["rules"], plot=target)
        out, err = capsys.readouterr()
        assert code == 0, err
        assert out and all(json.loads(line) for line in out.splitlines())  # stdout stays JSON
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "data:image/png;base64,iVBORw0KGgo" in text
    assert "Zed" in text and "Alpha" in text


def test_cli_engine_and_plot_options(files: dict[str, Path], tmp_path: Path) -> None:
    base = ["backtest", "--prices", str(files["prices"]), "--holdings", str(files["holdings"])]
    base += ["--rules", str(files["rules"])]
    scalar = CliRunner().invoke(app, [*base, "--engine", "scalar"])
    columnar = CliRunner().invoke(app, [*base, "--plot", str(tmp_path / "p.png")])
    assert scalar.exit_code == columnar.exit_code == 0
    assert scalar.stdout == columnar.stdout
    assert (tmp_path / "p.png").stat().st_size > 0
    assert CliRunner().invoke(app, [*base, "--engine", "fast"]).exit_code == 2
    assert CliRunner().invoke(app, [*base, "--plot", str(tmp_path / "p.pdf")]).exit_code == 2
