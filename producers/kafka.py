"""The one place producers touch Kafka: a tuned kafka-python ``KafkaProducer`` wrapper.

Needs ``settings.kafka_client_kwargs()`` and ``settings.topic()``. Delivery is asynchronous;
failures arrive on the client's sender thread as errbacks, are counted there, and surface as a
``DeliveryError`` at the next ``flush`` (the client itself already retried them).
"""

from __future__ import annotations

import signal
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from cpwatch import metrics, topics
from cpwatch.deadletters import letter
from cpwatch.exceptions import EngineError
from cpwatch.records import Record

if TYPE_CHECKING:
    from cpwatch.settings import Settings

# Chosen with bench/bench_producers.py --grid on the 2-core dev box (200k ticks, ticks/s):
# none 38k, gzip 61k, lz4 72k (20 ms / 256 KiB); lz4 5 ms / 64 KiB 57k, 50 ms / 1 MiB 71k.
# Compression wins because kafka-python's per-byte Python work shrinks with the payload; a
# 20 ms linger fills big batches without a latency anyone watching policy news would notice.
TUNING: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,  # with acks=all: retries never duplicate or reorder
    "compression_type": "lz4",
    "linger_ms": 20,
    "batch_size": 256 * 1024,
    "max_in_flight_requests_per_connection": 5,  # the most idempotence allows
    "request_timeout_ms": 15_000,
    "delivery_timeout_ms": 60_000,  # bound on client-side retries of one record
    "max_block_ms": 30_000,  # bound on send() waiting for metadata or buffer space
}
FLUSH_TIMEOUT_S = 60.0
MAX_KEPT_ERRORS = 5


class DeliveryError(EngineError):
    """Some records were not acknowledged by Kafka even after the client's retries."""


class Producer:
    """Send records to logical cpwatch topics; count deliveries and failures.

    Use as a context manager: leaving it flushes (raising on failed deliveries) and closes.
    """

    def __init__(
        self, settings: Settings, *, client_id: str = "cpwatch-producer", **overrides: Any
    ) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        from producers.partitioner import MemoPartitioner

        self.settings = settings
        self.failed = 0
        self._reported = 0
        self._errors: deque[str] = deque(maxlen=MAX_KEPT_ERRORS)
        self.sent = 0
        self._topics: dict[str, str] = {}
        self.stage = "producer-" + client_id.removeprefix("cpwatch-")  # metrics label
        self._out: dict[str, Any] = {}  # logical topic -> its records-out counter
        config = {
            **settings.kafka_client_kwargs(),
            **TUNING,
            "partitioner": MemoPartitioner(),
            "client_id": client_id,
            **overrides,
        }
        from cpwatch.engine_errors import kafka_errors

        try:
            with kafka_errors(settings):  # a refused login: one clear AuthError
                self._client = KafkaProducer(**config)
        except KafkaError as exc:
            where = settings.kafka_bootstrap
            raise EngineError(f"cannot connect to Kafka at {where}: {exc}") from exc

    def _on_error(self, topic: str, exc: BaseException) -> None:
        # Runs on the sender thread, the only writer of these two fields.
        self.failed += 1
        metrics.count_failed(self.stage, topic)
        self._errors.append(f"{type(exc).__name__}: {exc}")

    def send(self, topic: str, key: str | None, value: bytes | Record) -> None:
        """Queue one record for the logical ``topic`` (e.g. ``topics.NEWS``); never blocks long."""
        from kafka.errors import KafkaError

        full = self._topics.get(topic)
        if full is None:
            full = self._topics[topic] = self.settings.topic(topic)
        payload = value if isinstance(value, bytes) else value.to_bytes()
        try:
            future = self._client.send(
                full, key=key.encode() if key is not None else None, value=payload
            )
        except KafkaError as exc:
            raise EngineError(f"Kafka refused a record for {full}: {exc}") from exc
        future.add_errback(self._on_error, topic)
        self.sent += 1
        out = self._out.get(topic)
        if out is None:
            out = self._out[topic] = metrics.RECORDS_OUT.labels(self.stage, topic)
        out.inc()

    def dead_letter(
        self,
        stage: str,
        reason: str,
        payload: bytes | str | None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        """Park an unusable input on the dead-letter topic with the reason, keyed by stage."""
        record = letter(stage, reason, payload, topic=topic, partition=partition, offset=offset)
        self.send(topics.DEAD_LETTER, stage, record)

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Wait for every queued record; raise ``DeliveryError`` if any failed since last time."""
        from kafka.errors import KafkaError

        try:
            self._client.flush(timeout=timeout)
        except KafkaError as exc:
            raise EngineError(f"Kafka flush did not finish in {timeout:.0f}s: {exc}") from exc
        new = self.failed - self._reported
        if new:
            self._reported = self.failed
            raise DeliveryError(f"{new} record(s) failed delivery; last: {'; '.join(self._errors)}")

    def close(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        self._client.close(timeout=timeout)

    @property
    def acked(self) -> int:
        """Records sent minus those known failed (exact after a flush)."""
        return self.sent - self.failed

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if et is None:
                self.flush()
            else:
                # Keep what was queued, but never mask the original error with a flush error.
                try:
                    self.flush()
                except EngineError:
                    pass
        finally:
            self.close()


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT, so loops end and the producer flushes on the way out.

    Outside the main thread (tests, embedded use) no handler can be installed; the event is
    then only set by whoever holds it.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user really wants out now
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
