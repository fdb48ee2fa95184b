"""The ``cpwatch produce news|prices|holdings`` commands: read, validate, send, summarise.

Each returns a process exit code: 0 when the run finished (bad input rows are skipped, counted
and dead-lettered, never fatal), 1 when Kafka or a venue failed, 2 when the input as a whole is
unusable (missing file, wrong header, nothing to do).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cpwatch import topics
from cpwatch.exceptions import EngineError
from cpwatch.metrics import producer_metrics_port, start_metrics_server
from cpwatch.records import HoldingUpdate, PriceTick
from cpwatch.settings import Settings
from producers.holdings_csv import HoldingsFormatError, read_holdings
from producers.kafka import Producer, stop_on_signals
from producers.news_jsonl import read_jsonl
from producers.pacing import Pacer
from producers.prices_csv import CsvFormatError, count_rows, read_ticks
from producers.summary import Bad, Summary

PROGRESS_EVERY = 500  # rows between progress-bar refreshes: rich redraws are not free
DAY_S = 86_400.0


def _skip(producer: Producer, summary: Summary, stage: str, bad: Bad, console: Console) -> None:
    summary.skip(bad, console)
    if bad.payload:
        producer.dead_letter(stage, str(bad), bad.payload)


def _error(console: Console, problem: object) -> None:
    console.print(f"[red]error:[/red] {escape(str(problem))}", soft_wrap=True)


def _finish(summary: Summary, console: Console, code: int) -> int:
    summary.render(console)
    return code


def _serve_metrics(settings: Settings, kind: str) -> None:
    """/metrics of this producer on ``producer_metrics_port`` + the kind's offset; a port
    already taken (two producers of one kind) is a logged warning, never an error."""
    port = producer_metrics_port(settings.producer_metrics_port, kind)
    start_metrics_server(port, settings.metrics_host)


def seen_path(settings: Settings) -> Path:
    return settings.home / "producers" / "rss-seen.json"


def _replay_news(
    producer: Producer,
    path: Path,
    speed: float,
    stop: threading.Event,
    summary: Summary,
    console: Console,
) -> None:
    pacer = Pacer(speed, stop)
    for item in read_jsonl(path):
        if isinstance(item, Bad):
            _skip(producer, summary, "producer-news", item, console)
            continue
        if not pacer.wait_until(item.published):
            break
        producer.send(topics.NEWS, item.id, item)
        summary.sent += 1


def _poll_feeds(
    producer: Producer,
    settings: Settings,
    urls: list[str],
    *,
    interval: float,
    once: bool,
    stop: threading.Event,
    summary: Summary,
    console: Console,
) -> None:
    from producers.rss import make_client, poll_once
    from producers.seen import SeenStore

    store = SeenStore.load(seen_path(settings))
    with make_client() as client:
        while not stop.is_set():
            batches = poll_once(client, urls, store)
            for batch in batches:
                if batch.error:
                    summary.skip(batch.error, console)
                    continue
                for item in batch.items:
                    if isinstance(item, Bad):
                        _skip(producer, summary, "producer-rss", item, console)
                    elif item.id in store:
                        summary.skip_reason("already sent")
                    else:
                        producer.send(topics.NEWS, item.id, item)
                        store.add(item.id)
                        summary.sent += 1
            producer.flush()  # only what Kafka acknowledged is remembered as sent
            for batch in batches:
                if batch.validators is not None:
                    store.validators[batch.url] = batch.validators
            store.save()
            if once:
                break
            stop.wait(interval)


def produce_news(
    settings: Settings,
    *,
    jsonl: Path | None,
    rss: list[str],
    interval: float,
    speed: float,
    once: bool,
    console: Console,
) -> int:
    """Replay a JSON Lines file and/or poll RSS/Atom feeds into the ``news`` topic."""
    summary = Summary("news")
    _serve_metrics(settings, "news")
    if jsonl is None and not rss:
        _error(console, "give --jsonl FILE and/or --rss URL")
        return 2
    if jsonl is not None and not jsonl.is_file():
        _error(console, f"{jsonl}: no such file")
        return 2
    try:
        with stop_on_signals() as stop, Producer(settings, client_id="cpwatch-news") as producer:
            if jsonl is not None:
                _replay_news(producer, jsonl, speed, stop, summary, console)
            if rss and not stop.is_set():
                _poll_feeds(
                    producer,
                    settings,
                    rss,
                    interval=interval,
                    once=once,
                    stop=stop,
                    summary=summary,
                    console=console,
                )
    except (EngineError, OSError) as exc:  # OSError: the seen-set file cannot be written
        _error(console, exc)
        return _finish(summary, console, 1)
    return _finish(summary, console, 0)


def _replay_csv(
    producer: Producer,
    path: Path,
    *,
    venue: str,
    symbol: str,
    speed: float,
    stop: threading.Event,
    summary: Summary,
    console: Console,
) -> None:
    pacer = Pacer(speed * DAY_S, stop)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"replay {path.name}", total=count_rows(path))
        pending = 0
        for item in read_ticks(path, venue=venue, symbol=symbol):
            pending += 1
            if isinstance(item, Bad):
                _skip(producer, summary, "producer-prices", item, console)
            else:
                if not pacer.wait_until(item.ts):
                    break
                producer.send(topics.PRICE_TICKS, item.key, item)
                summary.sent += 1
            if pending >= PROGRESS_EVERY or speed > 0:
                progress.advance(task, pending)
                pending = 0
        progress.advance(task, pending)


def produce_prices(
    settings: Settings,
    *,
    csv: Path | None,
    ws: str | None,
    rest: str | None,
    symbol: str,
    venue: str,
    speed: float,
    url: str | None,
    console: Console,
) -> int:
    """Replay a prices CSV, or stream live ticks (WebSocket or REST) into ``price-ticks``."""
    from producers.venues import VenueError, normalise_symbol

    summary = Summary("price ticks")
    _serve_metrics(settings, "prices")
    if sum(x is not None for x in (csv, ws, rest)) != 1:
        _error(console, "give exactly one of --csv FILE, --ws VENUE, --rest VENUE")
        return 2
    try:
        symbol = normalise_symbol(symbol)
        with stop_on_signals() as stop, Producer(settings, client_id="cpwatch-prices") as producer:

            def send(tick: PriceTick) -> None:
                producer.send(topics.PRICE_TICKS, tick.key, tick)
                summary.sent += 1

            def bad(item: Bad) -> None:
                _skip(producer, summary, "producer-prices", item, console)

            if csv is not None:
                _replay_csv(
                    producer,
                    csv,
                    venue=venue,
                    symbol=symbol,
                    speed=speed,
                    stop=stop,
                    summary=summary,
                    console=console,
                )
            elif ws is not None:
                from producers.live import run_live
                from producers.venues import adapter

                asyncio.run(
                    run_live(
                        adapter(ws),
                        [symbol],
                        on_tick=send,
                        on_bad=bad,
                        stop=stop,
                        url=url,
                        console=console,
                    )
                )
            else:
                from producers import rest as rest_mod

                if (rest or "").lower() != "coinbase":
                    raise VenueError(f"REST polling supports coinbase only, not {rest!r}")
                with rest_mod.make_client(url) as client:
                    rest_mod.poll_coinbase(client, symbol, on_tick=send, on_bad=bad, stop=stop)
    except (OSError, CsvFormatError) as exc:
        _error(console, exc)
        return _finish(summary, console, 2)
    except (EngineError, VenueError) as exc:
        _error(console, exc)
        return _finish(summary, console, 1)
    return _finish(summary, console, 0)


def produce_holdings(settings: Settings, file: Path, *, console: Console) -> int:
    """One ``HoldingUpdate`` per row of a CSV/YAML file into the compacted ``holdings`` topic."""
    summary = Summary("holdings")
    _serve_metrics(settings, "holdings")
    try:
        items = list(read_holdings(file))
    except (OSError, HoldingsFormatError) as exc:
        _error(console, exc)
        return _finish(summary, console, 2)
    good: list[HoldingUpdate] = [h for h in items if isinstance(h, HoldingUpdate)]
    # Oldest first: on a compacted topic the last write per holder is the one kept.
    good.sort(key=lambda h: h.as_of)
    try:
        with Producer(settings, client_id="cpwatch-holdings") as producer:
            for item in items:
                if isinstance(item, Bad):
                    _skip(producer, summary, "producer-holdings", item, console)
            for holding in good:
                producer.send(topics.HOLDINGS, holding.key, holding)
                summary.sent += 1
    except EngineError as exc:
        _error(console, exc)
        return _finish(summary, console, 1)
    return _finish(summary, console, 0)
