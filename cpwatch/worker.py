"""Assemble and run the Faust worker: stream agents (streams/) and sink agents (sinks/)."""

from __future__ import annotations

import logging

from cpwatch.settings import Settings


def prepare(settings: Settings) -> None:
    """Create topics and index templates before any agent starts (idempotent)."""
    from elasticsearch import Elasticsearch

    from cpwatch.topics import ensure_topics
    from sinks.indices import ensure_indices

    ensure_topics(settings)
    es = Elasticsearch(**settings.es_client_kwargs())
    try:
        ensure_indices(es, settings)
    finally:
        es.close()


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    import faust

    from cpwatch.metrics import start_metrics_server
    from sinks import agents as sink_agents
    from sinks import delivery_agent, subscription_agent
    from streams import lag, news_agent, treasury_agent
    from streams.app import create_app

    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    prepare(settings)
    start_metrics_server(settings.metrics_port, settings.metrics_host)
    app, topics = create_app(settings)
    lag.register(app)
    news_agent.register(app, topics, settings)
    treasury_agent.register(app, topics, settings)
    sink_agents.register(app, topics, settings)
    subscription_agent.register(app, topics, settings)
    delivery_agent.register(app, topics, settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner lowers the root logger to DEBUG so it can animate on every
    # record; every debug call in aiokafka then builds a LogRecord (~11% of the worker's CPU).
    worker.spinner = None
    worker.execute_from_commandline()
