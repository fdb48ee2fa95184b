"""Pins producers.prices_csv: one tick per row, and errors naming file:line:field."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest

from cpwatch.records import PriceTick
from producers.prices_csv import CsvFormatError, count_rows, read_ticks
from producers.summary import Bad


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.csv"
    path.write_text(text)
    return path


def test_daily_rows_become_ticks(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "date,open,high,low,close,volume\n"
        "2024-01-01,1,2,0.5,42000.5,12.5\n2024-01-02,1,2,0.5,43000,\n",
    )
    first, second = list(read_ticks(path, venue="replay", symbol="BTC-USD"))
    assert first == PriceTick(
        venue="replay",
        symbol="BTC-USD",
        price=42000.5,
        size=12.5,
        ts=datetime(2024, 1, 1, tzinfo=UTC),
        seq=1,
    )
    assert isinstance(second, PriceTick)
    assert second.size is None and second.seq == 2
    assert first.key == "replay:BTC-USD"


def test_ts_column_without_volume(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "ts,open,high,low,close\n2020-01-01T01:00:00Z,1,1,1,7197.17\n"
        "2020-01-01 02:00:00,1,1,1,7200\n",
    )
    a, b = list(read_ticks(path, venue="v", symbol="BTC-USD"))
    assert isinstance(a, PriceTick) and isinstance(b, PriceTick)
    assert a.ts == datetime(2020, 1, 1, 1, tzinfo=UTC) and a.size is None
    assert b.ts == datetime(2020, 1, 1, 2, tzinfo=UTC)


def test_bad_rows_are_named_and_skipped(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "date,open,high,low,close,volume\n"
        "2024-01-01,1,1,1,100,1\n"
        "2024-13-01,1,1,1,100,1\n"
        "2024-01-03,1,1,1,abc,1\n"
        "2024-01-04,1,1,1,-5,1\n"
        "2024-01-05,1,1\n"
        "\n"
        "2024-01-06,1,1,1,100,-1\n"
        "2024-01-07,1,1,1,nan,1\n"
        "2024-01-08,1,1,1,101,1\n",
    )
    items = list(read_ticks(path, venue="v", symbol="BTC-USD"))
    bad = [i for i in items if isinstance(i, Bad)]
    good = [i for i in items if isinstance(i, PriceTick)]
    assert [t.price for t in good] == [100, 101]
    assert [b.where for b in bad] == [
        f"{path}:3:date",
        f"{path}:4:close",
        f"{path}:5:close",
        f"{path}:6",
        f"{path}:8:volume",
        f"{path}:9:close",
    ]
    assert "not an ISO date" in bad[0].detail
    assert "must be > 0" in bad[2].detail
    assert bad[3].kind == "short row"
    assert good[1].seq == 8  # data row number, stable across replays even with bad rows


def test_header_problems_are_fatal(tmp_path: Path) -> None:
    with pytest.raises(CsvFormatError, match="header"):
        list(read_ticks(_csv(tmp_path, "when,price\n1,2\n"), venue="v", symbol="S-T"))
    with pytest.raises(CsvFormatError, match="empty"):
        list(read_ticks(_csv(tmp_path, ""), venue="v", symbol="S-T"))


def test_bundled_sample_is_clean() -> None:
    path = Path(str(resources.files("cpwatch") / "data" / "btc_usd_daily.csv"))
    items = list(read_ticks(path, venue="replay", symbol="BTC-USD"))
    assert len(items) == count_rows(path) > 600
    assert all(isinstance(i, PriceTick) for i in items)
    first = items[0]
    assert isinstance(first, PriceTick) and first.ts == datetime(2024, 1, 1, tzinfo=UTC)
