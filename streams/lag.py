"""Consumer lag per assigned partition, read from the worker's own Faust consumer.

A timer asks the broker for the highwater of every assigned partition (one request) and
subtracts the offset Faust last committed there (its position when nothing was committed
yet); ``cpwatch_consumer_lag{topic,partition}`` then says how far behind each partition is.
Partitions revoked from this worker are removed from the gauge. Faust's changelog topics are
left out: they are read only to restore tables and Faust never commits a position there, so
their "lag" grows with every table write and is no backlog.
"""

from __future__ import annotations

import logging

import faust

from cpwatch import metrics

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0


def register(app: faust.App) -> None:
    exported: set[tuple[str, str]] = set()

    @app.timer(interval=LAG_INTERVAL_S)
    async def consumer_lag() -> None:
        consumer = app.consumer
        try:
            tps = {tp for tp in consumer.assignment() if not _changelog(tp.topic)}
            highwaters = await consumer.highwaters(*tps) if tps else {}
            committed = getattr(consumer, "_committed_offset", {})
            lags: dict[tuple[str, str], int] = {}
            for tp, hw in highwaters.items():
                done = committed.get(tp)
                if done is None:
                    done = await consumer.position(tp)
                if hw is None or done is None:
                    continue
                labels = (metrics.logical_topic(tp.topic), str(tp.partition))
                # Several full topics can share a logical name ("other"): keep the largest.
                lags[labels] = max(lags.get(labels, 0), hw - done)
        except Exception as exc:  # noqa: BLE001 - a metrics failure must not stop the worker
            log.warning("consumer lag: %r", exc)
            return
        for labels, lag in lags.items():
            metrics.CONSUMER_LAG.labels(*labels).set(max(0, lag))
        for labels in exported - lags.keys():
            metrics.CONSUMER_LAG.remove(*labels)
        exported.clear()
        exported.update(lags)


def _changelog(topic: str) -> bool:
    return metrics.logical_topic(topic) == "changelog"
