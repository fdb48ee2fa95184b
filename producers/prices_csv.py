"""Replay OHLC(V) CSV files as price ticks: ``date|ts,open,high,low,close[,volume]``.

One tick per row: price = close, size = volume when the column exists, ts = the row's time in
UTC, seq = the data row number (stable across replays, so downstream can dedupe).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from cpwatch.exceptions import RecordError
from cpwatch.records import PriceTick
from producers.fields import FieldError, parse_number, parse_time
from producers.summary import Bad

TIME_COLUMNS = ("ts", "date")
MAX_FIELD_CHARS = 10_000


class CsvFormatError(ValueError):
    """The file as a whole is unusable (no header, missing columns): nothing can be replayed."""


def count_rows(path: Path) -> int:
    """Data rows in ``path`` (lines minus header), for the progress bar."""
    with path.open("rb") as fh:
        return max(sum(1 for line in fh if line.strip()) - 1, 0)


def read_ticks(path: Path, *, venue: str, symbol: str) -> Iterator[PriceTick | Bad]:
    """Ticks of ``path`` in file order; a bad row becomes a ``Bad`` naming file:line:field."""
    csv.field_size_limit(MAX_FIELD_CHARS)
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise CsvFormatError(f"{path}: empty file, expected a header row")
        columns = {name.strip().lower(): i for i, name in enumerate(header)}
        time_col = next((c for c in TIME_COLUMNS if c in columns), None)
        if time_col is None or "close" not in columns:
            raise CsvFormatError(
                f"{path}:1: header needs 'date' or 'ts' and 'close', got {','.join(header)}"
            )
        t_i, c_i, v_i = columns[time_col], columns["close"], columns.get("volume")
        width = max(columns.values()) + 1
        row_no = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # e.g. a NUL byte or an oversized field: skip the line
                yield Bad(f"{path}:{reader.line_num}", "unreadable row", str(exc))
                continue
            where = f"{path}:{reader.line_num}"
            if not row or all(not cell.strip() for cell in row):
                continue
            row_no += 1
            raw = ",".join(row)
            if len(row) < width:
                yield Bad(where, "short row", f"expected {width} fields, got {len(row)}", raw)
                continue
            try:
                ts = parse_time(row[t_i], time_col)
                price = parse_number(row[c_i], "close", minimum=0, strict_min=True)
                size = (
                    parse_number(row[v_i], "volume", required=False, minimum=0)
                    if v_i is not None
                    else None
                )
                yield PriceTick(
                    venue=venue, symbol=symbol, price=price, size=size, ts=ts, seq=row_no
                )
            except FieldError as exc:
                yield Bad(f"{where}:{exc.field}", "invalid field", str(exc), raw)
            except (RecordError, ValueError) as exc:
                yield Bad(where, "invalid row", str(exc).splitlines()[0], raw)
