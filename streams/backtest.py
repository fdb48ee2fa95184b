"""`cpwatch backtest`: replay a prices CSV and a holdings CSV through the rule engine.

stdout carries only the alerts, one JSON line each in time order; everything else (errors,
warnings, summary, progress bar) goes to stderr.

Engines: ``columnar`` (default) runs the prices through ``streams.columnar`` in chunks with
numpy; ``scalar`` runs them one by one through ``TreasuryBook``, the reference. Both print the
same alerts (tests/unit/test_columnar_equivalence.py). ``--plot`` draws each holder's value.

Exit codes: 0 all input used; 1 some bad rows were reported (``file:line``) and skipped, the
rest was processed; 2 nothing processed: a file is missing or unreadable, a required column is
missing, or the rules file is invalid.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from rich.console import Console
from rich.progress import Progress

from cpwatch.exceptions import ConfigError, RecordError
from cpwatch.records import HoldingUpdate
from streams.alerts import Alert
from streams.columnar import ColumnarBook, ColumnarEngine, to_us
from streams.rules import ALL_HOLDERS, Rule, RuleEngine, load_rules
from streams.treasury import TreasuryBook

PROGRESS_MIN_ROWS = 1000  # below this a bar only flickers
CHUNK = 65_536  # prices per columnar batch: the working arrays stay in cache
Engine = Literal["columnar", "scalar"]


class InputError(Exception):
    """A whole input file is unusable (exit 2)."""


@dataclass(frozen=True, slots=True)
class PriceRow:
    line: int
    ts: datetime
    close: float


def parse_when(text: str) -> datetime:
    """``2024-03-05`` -> midnight UTC; ISO timestamps keep their offset; naive ones are UTC."""
    text = text.strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    ts = datetime.fromisoformat(text)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _number(text: str, field: str, *, positive: bool) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"field '{field}': not a number: {text!r}") from None
    if not math.isfinite(x) or (positive and x <= 0) or x < 0:
        raise ValueError(
            f"field '{field}': must be a finite number {'> 0' if positive else '>= 0'}: {text!r}"
        )
    return x


def _rows(path: Path, required: list[list[str]]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) for each CSV record; a missing column (any of each group) raises InputError."""
    try:
        fh = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    with fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise InputError(f"{path}: empty file, expected a header row") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{path}:1: unreadable header: {exc}") from exc
        for group in required:
            if not any(col in header for col in group):
                raise InputError(
                    f"{path}:1: missing required column {' or '.join(map(repr, group))}"
                )
        start = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                raise InputError(f"{path}:{start}: unreadable CSV: {exc}") from exc
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                yield (
                    line,
                    {"__error__": f"bad CSV row: {len(cells)} fields, header has {len(header)}"},
                )
            else:
                yield line, dict(zip(header, cells, strict=True))


def read_prices(path: Path, errors: list[str]) -> list[PriceRow]:
    rows: list[PriceRow] = []
    for line, row in _rows(path, [["ts", "date"], ["close"]]):
        field = "ts" if "ts" in row else "date"
        try:
            if "__error__" in row:
                raise ValueError(row["__error__"])
            try:
                ts = parse_when(row[field])
            except ValueError:
                raise ValueError(f"field '{field}': not an ISO date/time: {row[field]!r}") from None
            rows.append(PriceRow(line, ts, _number(row["close"], "close", positive=True)))
        except ValueError as exc:
            errors.append(f"{path}:{line}: {exc}")
    return rows


def read_holdings(path: Path, errors: list[str], warnings: list[str]) -> list[HoldingUpdate]:
    """Rows in the format of treasuries.csv; ``kind`` is optional here (rules do not use it)."""
    updates: list[HoldingUpdate] = []
    for line, row in _rows(path, [["holder"], ["btc"], ["as_of"]]):
        try:
            if "__error__" in row:
                raise ValueError(row["__error__"])
            if not row["btc"].strip():  # amount undisclosed (a reserve announced, size unknown)
                warnings.append(f"{path}:{line}: field 'btc' is empty: row skipped (no BTC figure)")
                continue
            try:
                as_of = parse_when(row["as_of"])
            except ValueError:
                raise ValueError(f"field 'as_of': not an ISO date: {row['as_of']!r}") from None
            cost = (row.get("avg_cost_usd") or "").strip()
            fields = {
                "holder": row["holder"],
                "name": row["holder"],
                "kind": (row.get("kind") or "").strip() or "company",
                "country": (row.get("country") or "").strip() or None,
                "btc": _number(row["btc"], "btc", positive=False),
                "as_of": as_of,
                "avg_cost_usd": _number(cost, "avg_cost_usd", positive=True) if cost else None,
                "source": (row.get("source_url") or "").strip(),
            }
            updates.append(HoldingUpdate.parse(fields))
        except ValueError as exc:
            errors.append(f"{path}:{line}: {exc}")
        except RecordError as exc:  # already names the field; drop the record-type prefix
            reason = str(exc).removeprefix(f"{HoldingUpdate.record_type}: ")
            errors.append(f"{path}:{line}: {reason}")
    return updates


def run_backtest(
    prices: list[PriceRow],
    holdings: Iterable[HoldingUpdate],
    engine: RuleEngine,
    progress: Progress | None = None,
    *,
    holdings_after: int = 0,
) -> Iterator[Alert]:
    """Each price row, in file order, through one ``TreasuryBook`` (which drops late rows).

    The holdings arrive before price row ``holdings_after`` (0: before any price, as when the
    holdings topic is loaded first); a later arrival follows the late-holding rules of
    ``streams.treasury``, exactly as in the stream.
    """
    book = TreasuryBook(engine)
    pending: list[HoldingUpdate] | None = list(holdings)
    task = progress.add_task("backtest", total=len(prices)) if progress else None
    for i, row in enumerate(prices):
        if pending is not None and i >= holdings_after:
            book.apply_holdings(pending)
            pending = None
        yield from book.on_price(row.ts, row.close)
        if progress is not None and task is not None:
            progress.advance(task)
    if pending is not None:
        book.apply_holdings(pending)


def run_backtest_columnar(
    prices: list[PriceRow],
    holdings: Iterable[HoldingUpdate],
    engine: ColumnarEngine,
    progress: Progress | None = None,
    *,
    holdings_after: int = 0,
    chunk: int = CHUNK,
    book: ColumnarBook | None = None,
) -> Iterator[Alert]:
    """``run_backtest`` with the columnar engine: the same alerts, in chunks of ``chunk``
    prices (a chunk boundary also falls where the holdings arrive)."""
    t_us = np.fromiter((to_us(r.ts) for r in prices), np.int64, len(prices))
    close = np.fromiter((r.close for r in prices), np.float64, len(prices))
    yield from run_columns(
        t_us,
        close,
        holdings,
        engine,
        progress,
        holdings_after=holdings_after,
        chunk=chunk,
        book=book,
    )


def run_columns(
    t_us: np.ndarray,
    close: np.ndarray,
    holdings: Iterable[HoldingUpdate],
    engine: ColumnarEngine,
    progress: Progress | None = None,
    *,
    holdings_after: int = 0,
    chunk: int = CHUNK,
    book: ColumnarBook | None = None,
) -> Iterator[Alert]:
    """The columnar backtest on price columns (event time in microseconds, close)."""
    book = book if book is not None else ColumnarBook(engine)
    n = len(t_us)
    task = progress.add_task("backtest", total=n) if progress else None
    cuts = sorted({*range(0, n, chunk), min(holdings_after, n), n})
    pending: list[HoldingUpdate] | None = list(holdings)
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        if pending is not None and lo >= holdings_after:
            book.apply_holdings(pending)
            pending = None
        yield from book.on_prices(t_us[lo:hi], close[lo:hi])
        if progress is not None and task is not None:
            progress.advance(task, hi - lo)
    if pending is not None:
        book.apply_holdings(pending)


def backtest_command(
    prices: Path,
    holdings: Path,
    rules: Path,
    holdings_after: int = 0,
    *,
    engine_name: Engine = "columnar",
    plot: Path | None = None,
) -> int:
    """Print one JSON line per crossing; return the exit code (see module docstring)."""
    errors: list[str] = []
    warnings: list[str] = []
    try:
        rule_set: tuple[Rule, ...] = load_rules(rules)
        price_rows = read_prices(prices, errors)
        updates = read_holdings(holdings, errors, warnings)
    except (ConfigError, InputError, RecordError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for msg in errors:
        print(f"error: {msg}", file=sys.stderr)
    for msg in warnings:
        print(f"warning: {msg}", file=sys.stderr)
    known = {u.holder for u in updates}
    for rule in rule_set:
        if rule.holder != ALL_HOLDERS and rule.holder not in known:
            print(
                f"warning: rule {rule.id!r}: holder {rule.holder!r} not in {holdings}",
                file=sys.stderr,
            )

    if plot is not None and plot.suffix.lower() not in (".png", ".html"):
        print(f"error: --plot {plot}: write a .png or .html file", file=sys.stderr)
        return 2
    engine = ColumnarEngine(rule_set) if engine_name == "columnar" else RuleEngine(rule_set)
    console = Console(stderr=True)
    show = console.is_terminal and len(price_rows) >= PROGRESS_MIN_ROWS
    count = 0
    out = sys.stdout
    alerts: list[Alert] = []
    # redirect_stdout=False: by default rich reroutes stdout through the bar's console (stderr)
    try:
        with Progress(
            console=console, transient=True, disable=not show, redirect_stdout=False
        ) as progress:
            if isinstance(engine, ColumnarEngine):
                run = run_backtest_columnar(
                    price_rows, updates, engine, progress, holdings_after=holdings_after
                )
            else:
                run = run_backtest(
                    price_rows, updates, engine, progress, holdings_after=holdings_after
                )
            for alert in run:
                out.write(json.dumps(alert.to_dict()) + "\n")
                count += 1
                if plot is not None:
                    alerts.append(alert)
        out.flush()
    except BrokenPipeError:  # `| head` closed the pipe: the reader is done, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 1 if errors else 0
    if engine.dropped:
        print(
            f"warning: {prices}: {engine.dropped} row(s) older than an earlier row dropped "
            "(event time only moves forward)",
            file=sys.stderr,
        )
    print(
        f"backtest: {len(price_rows)} price rows, {len(updates)} holdings, {len(rule_set)} rules, "
        f"{engine.evaluations} evaluations, {count} alerts"
        + (f", {len(errors)} bad row(s) skipped" if errors else ""),
        file=sys.stderr,
    )
    if plot is not None:
        from streams.backtest_plot import plot_backtest  # matplotlib only when asked

        try:
            plot_backtest(plot, price_rows, updates, rule_set, alerts, console=console)
        except OSError as exc:
            print(f"error: --plot {plot}: {exc}", file=sys.stderr)
            return 2
        print(f"backtest: plot written to {plot}", file=sys.stderr)
    return 1 if errors else 0
