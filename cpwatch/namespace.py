"""One cpwatch namespace = a topic prefix + an index prefix. Tests and benchmarks each run in
their own; these helpers hand a namespace to a child process and remove it afterwards."""

from __future__ import annotations

import os

from cpwatch.settings import Settings


def child_env(settings: Settings) -> dict[str, str]:
    """The environment under which a child `cpwatch` process rebuilds exactly these settings."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is None or value == field.default:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"CPWATCH_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


def drop_namespace(settings: Settings) -> list[str]:
    """Delete the namespace's topics, indices and templates; return what could not be deleted."""
    from elasticsearch import Elasticsearch
    from kafka.admin import KafkaAdminClient

    problems: list[str] = []
    try:
        admin = KafkaAdminClient(**settings.kafka_client_kwargs())
        mine = [n for n in admin.list_topics() if n.startswith(settings.topic_prefix)]
        if mine and settings.topic_prefix:  # never the unprefixed production topics
            admin.delete_topics(mine)
        admin.close()
    except Exception as exc:  # noqa: BLE001 - report, never raise: this runs in teardown
        problems.append(f"topics: {exc!r}")
    try:
        es = Elasticsearch(**settings.es_client_kwargs())
        pattern = f"{settings.es_index_prefix}-*"
        es.options(ignore_status=404).indices.delete(index=pattern)
        es.options(ignore_status=404).indices.delete_index_template(name=pattern)
        es.close()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"indices: {exc!r}")
    return problems
