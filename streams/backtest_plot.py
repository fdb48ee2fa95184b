"""``cpwatch backtest --plot FILE.png|FILE.html``: each holder's value over time, its rules'
thresholds and every crossing.

One panel per holder: the value (BTC in force x close), a level rule's threshold, a
below-cost rule's break-even value (BTC x average cost), a drawdown rule's floor under the
running peak; crossings are marked (triangle up / down) at the alert's value. pct_move has no
fixed line: only its crossings show. Rendered offline with matplotlib's Agg backend; the HTML
file embeds the PNG (base64), so it is one self-contained file.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from numpy.typing import NDArray  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402

from cpwatch.records import HoldingUpdate  # noqa: E402
from streams.alerts import Alert  # noqa: E402
from streams.backtest import PriceRow  # noqa: E402
from streams.columnar import to_us  # noqa: E402
from streams.holdings import HoldingsTimeline  # noqa: E402
from streams.rules import BelowCostRule, DrawdownRule, LevelRule, Rule  # noqa: E402

MAX_POINTS = 4_000  # per line: more only costs render time (min/max per bucket keeps peaks)
PROGRESS_MIN_ROWS = 1000


def _decimate(x: NDArray[np.int64], y: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """At most ~MAX_POINTS points: each bucket's min and max, in time order."""
    n = len(x)
    if n <= MAX_POINTS:
        return x, y
    size = -(-n // (MAX_POINTS // 2))
    starts = np.arange(0, n, size)
    lo = np.minimum.reduceat(np.where(np.isnan(y), np.inf, y), starts)
    hi = np.maximum.reduceat(np.where(np.isnan(y), -np.inf, y), starts)
    xs = np.repeat(x[starts], 2)
    ys = np.column_stack((lo, hi)).ravel()
    ys[~np.isfinite(ys)] = np.nan
    return xs, ys


def _accepted(t_us: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Rows the engines keep: not older than an earlier row."""
    if len(t_us) == 0:
        return np.zeros(0, np.bool_)
    before = np.concatenate(([np.iinfo(np.int64).min], np.maximum.accumulate(t_us)[:-1]))
    return t_us >= before


def _panel(
    ax: Axes,
    holder: str,
    t_us: NDArray[np.int64],
    close: NDArray[np.float64],
    rows: list[HoldingUpdate],
    rules: Sequence[Rule],
    alerts: Sequence[Alert],
) -> None:
    as_of = np.array([to_us(r.as_of) for r in rows], np.int64)
    which = np.searchsorted(as_of, t_us, side="right") - 1
    held = which >= 0
    btc = np.array([r.btc for r in rows])[np.maximum(which, 0)]
    cost = np.array([np.nan if r.avg_cost_usd is None else r.avg_cost_usd for r in rows])
    value = np.where(held, btc * close, np.nan)
    when = t_us.astype("datetime64[us]")

    def line(y: NDArray[np.float64], **kw: object) -> None:
        xs, ys = _decimate(t_us, y)
        ax.plot(xs.astype("datetime64[us]"), ys, **kw)  # type: ignore[arg-type]

    line(value, color="black", linewidth=1.0, label="value")
    for rule in rules:
        if not rule.applies_to(holder):
            continue
        if isinstance(rule, LevelRule):
            ax.axhline(rule.threshold_usd, linestyle="--", linewidth=0.8, label=f"{rule.id}: level")
        elif isinstance(rule, BelowCostRule):
            line(
                np.where(held, btc * cost[np.maximum(which, 0)], np.nan),
                linestyle=":",
                linewidth=0.9,
                label=f"{rule.id}: cost basis",
            )
        elif isinstance(rule, DrawdownRule):
            peak = np.fmax.accumulate(value)
            line(
                peak * (1 - rule.pct / 100),
                linestyle="-.",
                linewidth=0.8,
                label=f"{rule.id}: drawdown floor",
            )
    mine = [a for a in alerts if a.holder == holder]
    for direction, marker, colour in (("up", "^", "tab:green"), ("down", "v", "tab:red")):
        hits = [a for a in mine if a.direction == direction]
        if hits:
            ax.scatter(
                np.array([to_us(a.ts) for a in hits]).astype("datetime64[us]"),
                [a.value_usd for a in hits],
                marker=marker,
                color=colour,
                s=28,
                zorder=3,
                label=f"crossing {direction} ({len(hits)})",
            )
    ax.set_title(holder, loc="left", fontsize=10)
    ax.set_ylabel("USD")
    if len(when):
        ax.set_xlim(when[0], when[-1])
    ax.legend(fontsize=7, loc="upper left", ncols=2)
    ax.grid(alpha=0.3)


def render_png(
    price_t_us: NDArray[np.int64],
    close: NDArray[np.float64],
    holdings: Sequence[HoldingUpdate],
    rules: Sequence[Rule],
    alerts: Sequence[Alert],
    progress: Progress | None = None,
) -> bytes:
    """The figure as PNG bytes (one panel per holder, shared time axis)."""
    ok = _accepted(price_t_us)
    t_us, close = price_t_us[ok], close[ok]
    timeline = HoldingsTimeline(holdings)
    holders = timeline.holders or ["(no holdings)"]
    fig, axes = plt.subplots(
        len(holders),
        1,
        sharex=True,
        squeeze=False,
        figsize=(11, 2.6 * len(holders) + 0.6),
        layout="constrained",  # leaves room for the title, whatever the number of panels
    )
    task = progress.add_task("plot", total=len(holders)) if progress else None
    try:
        for ax, holder in zip(axes[:, 0], holders, strict=True):
            rows = timeline.history(holder)
            if rows:
                _panel(ax, holder, t_us, close, rows, rules, alerts)
            if progress is not None and task is not None:
                progress.advance(task)
        fig.suptitle("cpwatch backtest: holder values, thresholds and crossings", fontsize=11)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    return buf.getvalue()


def html_page(png: bytes, holders: Sequence[str], alerts: Sequence[Alert]) -> str:
    """One self-contained page: the PNG inline (data: URI) and a per-holder alert count."""
    counts = {h: sum(1 for a in alerts if a.holder == h) for h in holders}
    items = "\n".join(
        f"<li>{html.escape(h)}: {n} crossing{'s' if n != 1 else ''}</li>" for h, n in counts.items()
    )
    data = base64.b64encode(png).decode("ascii")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>cpwatch backtest</title></head>\n<body>\n<h1>cpwatch backtest</h1>\n"
        f"<ul>\n{items}\n</ul>\n"
        f'<img alt="holder values, thresholds and crossings" src="data:image/png;base64,{data}">\n'
        "</body></html>\n"
    )


def plot_backtest(
    path: Path,
    prices: Sequence[PriceRow],
    holdings: Sequence[HoldingUpdate],
    rules: Sequence[Rule],
    alerts: Sequence[Alert],
    console: Console | None = None,
) -> None:
    """Write ``path`` (.png or .html) for a backtest run; ``prices`` are ``PriceRow``s."""
    t_us = np.fromiter((to_us(p.ts) for p in prices), np.int64, len(prices))
    close = np.fromiter((p.close for p in prices), np.float64, len(prices))
    show = console is not None and console.is_terminal and len(prices) >= PROGRESS_MIN_ROWS
    with Progress(console=console, transient=True, disable=not show) as progress:
        png = render_png(t_us, close, holdings, rules, alerts, progress)
    if path.suffix.lower() == ".html":
        holders = HoldingsTimeline(holdings).holders
        path.write_text(html_page(png, holders, alerts), encoding="utf-8")
    else:
        path.write_bytes(png)
