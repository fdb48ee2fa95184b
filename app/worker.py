"""Assemble and run the Faust worker: stream agents (streams/) and sink agents (sinks/)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cpwatch.settings import Settings

log = logging.getLogger(__name__)


def prepare(settings: Settings) -> None:
    """Create topics and index templates before any agent starts (idempotent). A worker that
    starts while Kafka or Elasticsearch is still down (a restart during an outage) waits for
    them, up to ``startup_wait_s``, instead of exiting."""
    from elastic_transport import ConnectionError as ESConnectionError
    from elasticsearch import Elasticsearch
    from kafka.errors import RetriableError

    from cpwatch.engine_errors import es_errors
    from cpwatch.topics import ensure_topics
    from sinks.indices import ensure_indices

    def indices() -> None:
        es = Elasticsearch(**settings.es_client_kwargs())
        try:
            with es_errors(settings):  # refused credentials or certificate: no retry
                ensure_indices(es, settings)
        finally:
            es.close()

    # Connection refused, timeouts, no broker ready: all "retriable" in kafka-python 3.
    retry(lambda: ensure_topics(settings), "Kafka", (RetriableError,), settings.startup_wait_s)
    retry(indices, "Elasticsearch", (ESConnectionError,), settings.startup_wait_s)


def retry(
    step: Callable[[], None],
    what: str,
    down: tuple[type[BaseException], ...],
    wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``step`` until it stops raising ``down``; back off 0.5 s doubling to 10 s."""
    deadline, delay = clock() + wait_s, 0.5
    while True:
        try:
            step()
            return
        except down as exc:
            if clock() + delay > deadline:
                raise
            log.warning("%s not reachable yet (%s); retrying in %.1f s", what, exc, delay)
            sleep(delay)
            delay = min(delay * 2, 10.0)


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    import faust

    from cpwatch.metrics import start_metrics_server
    from notify import delivery_agent, match_agent
    from runtime import task_dump
    from runtime.faust_app import create_app
    from runtime.heap import freeze_long_lived
    from sinks import agents as sink_agents
    from streams import lag, news_agent, treasury_agent

    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if loglevel == "info":  # a line per Elasticsearch request and per admin-client connection
        for chatty in ("elastic_transport", "kafka"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    prepare(settings)
    start_metrics_server(settings.metrics_port, settings.metrics_host)
    app, topics = create_app(settings)
    lag.register(app)
    news_agent.register(app, topics, settings)
    treasury_agent.register(app, topics, settings)
    sink_agents.register(app, topics, settings)
    match_agent.register(app, topics, settings)
    delivery_agent.register(app, topics, settings)
    task_dump.install(app)

    class Worker(faust.Worker):
        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            freeze_long_lived("started")  # agents, clients and tables built while starting

    freeze_long_lived("assembled")  # start-up's own full collections skip the imports too
    worker = Worker(app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner lowers the root logger to DEBUG so it can animate on every
    # record; every debug call in aiokafka then builds a LogRecord (~11% of the worker's CPU).
    worker.spinner = None
    worker.execute_from_commandline()
