"""Faust agent of the treasury's holder stage: reference prices → valuations and rules → alerts.

The symbol stage (streams/treasury_agent.py) sends the asset's reference prices to every
partition of ``holder-prices``; each partition is a holder slot (streams/holder_processor.py)
that keeps the holdings and rule state of the holders hashing to it, in one record of the
``treasury-holders`` table. Slots spread over the workers like any partitions, so holder
valuations and rules no longer all run where the asset symbol's partition is.

Holdings are read here: every batch first catches the holdings table up to the topic's end
(streams/holdings_table.py). A price reaches this stage after its tick was produced, so a
holding Kafka acknowledged before that tick is in force for it, as in one stage.

Each batch's alerts and valuations are acknowledged by Kafka before the slot states are saved,
and its input offsets are committed after that: a crash replays the batch, and the prices it
had applied are dropped by their numbers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
import numpy as np
import orjson

from cpwatch import metrics
from cpwatch import topics as t
from cpwatch.exceptions import RecordError
from cpwatch.internal_topics import HandoverFrame, PriceSeriesFrame, decode_holder_message
from cpwatch.records import dumps
from cpwatch.settings import Settings
from runtime.deadletter import dead_letter
from runtime.faust_app import Topics
from runtime.nudge import watch_stalls
from runtime.position_table import row_key
from runtime.positions import admit
from runtime.range_reader import GroupStart, RangeReader
from runtime.table_state import changelog_ready, run_batches
from runtime.table_states import TableStates
from streams.columnar import from_us
from streams.holder_processor import HolderProcessor, HolderState
from streams.holdings_table import HoldingsTable
from streams.rules import load_rules
from streams.treasury_processor import BatchOutput, PriceSeries

log = logging.getLogger(__name__)

STAGE = "treasury-holders"
BATCH = 256  # series per batch: a series carries the prices of a whole symbol-stage chunk
WITHIN_S = 0.05
NUDGE = b"N"  # runtime/nudge.py: no frame kind; it only reveals a hole to the guard


def slot_keys(slots: int) -> tuple[bytes, ...]:
    """Per slot, the table key the producer's partitioner places on the slot's partition (the
    positions tables' row keys): the table's changelog partition then follows its input."""
    return tuple(row_key(p, slots) for p in range(slots))


def series_of(frame: PriceSeriesFrame) -> PriceSeries:
    as_of = None if frame.end_as_of_us is None else from_us(frame.end_as_of_us)
    t_us = np.frombuffer(frame.t_us, np.dtype("<i8")).astype(np.int64, copy=False)
    price = np.frombuffer(frame.price, np.dtype("<f8")).astype(np.float64, copy=False)
    return PriceSeries(frame.symbol, frame.seq, t_us, price, frame.end_price, as_of)


def register(
    app: faust.App, topics: Topics, settings: Settings, holder_prices: faust.TopicT
) -> None:
    slots = settings.topic_partitions
    processor = HolderProcessor(load_rules(settings.rules_path), slots, settings.treasury_engine)
    keys = slot_keys(slots)
    table = app.Table(
        "treasury-holders",
        default=None,
        partitions=slots,
        key_type=bytes,
        use_partitioner=True,  # written after the batch, outside any event: see slot_keys
    )
    states: TableStates[HolderState] = TableStates(
        table, lambda key, record: processor.from_record(keys.index(key), record)
    )
    guard = settings.processing_guarantee == "at_least_once"
    read = RangeReader(settings)
    start = GroupStart(settings, app.conf.id)
    if guard:
        start.follow(app, holder_prices.get_topic_name())
    holdings_table = HoldingsTable(settings)

    @app.on_partitions_revoked.connect
    async def _drop_cache(app: faust.App, revoked: Any, **_: Any) -> None:
        states.reload_pending = True  # honoured at the next batch boundary

    if guard:
        watch_stalls(app, holder_prices, states.expected_at, start, stage=STAGE, nudge=NUDGE)

    @app.agent(holder_prices, name=STAGE, concurrency=1)  # stateful: never more than 1
    async def holders(stream: faust.StreamT) -> None:
        await run_batches(app, stream, BATCH, WITHIN_S, holder_batch, states.restart, stage=STAGE)

    async def holder_batch(batch: list[Any]) -> None:
        t0 = time.perf_counter()
        await changelog_ready(app, table)
        states.reload_if_pending()
        await holdings_table.catch_up()
        fresh = await admit(
            batch, states.positions, read=read, stage=STAGE, enabled=guard, start=start
        )
        out, sent = BatchOutput(), []
        for event in fresh:
            if event.value == NUDGE:
                continue
            slot = event.message.partition
            st = states.get(keys[slot])
            st.partition = slot
            try:
                frame = decode_holder_message(event.value)
            except RecordError as exc:
                dlq = topics[t.DEAD_LETTER]
                sent.append(await dead_letter(dlq, STAGE, str(exc), event, event.value or b""))
                continue
            if isinstance(frame, HandoverFrame):
                if processor.adopt(st, frame.state):
                    log.info("%s: slot %d took its holders over from %s", STAGE, slot, frame.symbol)
                continue
            gap = processor.process(st, series_of(frame), holdings_table.rows, out)
            if gap is not None:
                log.error(
                    "%s: slot %d expected price %d of %s, got %d: the prices between are lost",
                    STAGE,
                    slot,
                    gap.expected,
                    frame.symbol,
                    gap.got,
                )
                metrics.PRICES_LOST.labels(str(slot)).inc(gap.got - gap.expected)
        _report(out)
        for alert in out.alerts:
            msg = dumps(alert.to_message())
            sent.append(await topics[t.ALERTS].send(key=alert.holder.encode(), value=msg))
        sent += await send_valuations(out.valuations)
        # State is saved only once Kafka acknowledged the batch's alerts: restored state
        # then never claims a crossing whose alert could have been lost with the process.
        await asyncio.gather(*sent)
        states.save({e.message.partition for e in batch})
        metrics.PROCESSING.labels(STAGE).observe(time.perf_counter() - t0)

    async def send_valuations(docs: dict[str, dict[str, Any]]) -> list[Any]:
        """One message per holder and minute, sent straight to Faust's producer: on a backlog
        that is one per holder and minute of prices, and Faust's ``Topic.send`` (schema,
        sensors, callbacks) cost several times the send itself (py-spy, bench_scale)."""
        producer, name = app.producer, topics[t.TREASURY_VALUATIONS].get_topic_name()
        sent, last = [], {}
        # A holder's partition once per batch: the producer's partitioner (murmur2 in pure
        # Python) per message was a third of this loop's time.
        parts: dict[str, int | None] = {}
        for doc in docs.values():
            holder = doc["holder"]
            key = holder.encode()
            if holder not in parts:
                parts[holder] = key_partition(producer, name, key)
            part = parts[holder]
            sent.append(await producer.send(name, key, orjson.dumps(doc), part, None, None))
            last[holder] = doc["value_usd"]
        for holder, value in last.items():
            metrics.set_treasury_value(holder, value)
        metrics.count_out(STAGE, t.TREASURY_VALUATIONS, len(docs))
        return sent


def key_partition(producer: Any, topic: str, key: bytes) -> int | None:
    """The partition Faust's producer would pick for ``key``; None (the producer picks, after
    fetching the topic's metadata) while it knows no partitions of ``topic`` yet."""
    try:
        return int(producer.key_partition(topic, key).partition)
    except TypeError:  # aiokafka lists the partitions of a topic it has no metadata for: None
        return None


def _report(out: BatchOutput) -> None:
    if out.late:
        metrics.HOLDINGS_LATE.inc(len(out.late))
        seen = out.late_seen_until.isoformat() if out.late_seen_until else "?"
        for u, rebased in out.late:
            log.warning(
                "late holding: %s as of %s arrived after prices up to %s were valued; "
                "it applies from the next price%s",
                u.holder,
                u.as_of.isoformat(),
                seen,
                ", rules re-based" if rebased else "",
            )
    metrics.count_out("treasury", t.ALERTS, len(out.alerts))
