"""`cpwatch topics create --partitions N` on the real Kafka: creates, raises, never lowers."""

from __future__ import annotations

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from cpwatch import topics as t
from cpwatch.settings import Settings
from cpwatch.topics import (
    PartitionError,
    internal_topic_names,
    partition_counts,
    raise_partitions,
)
from tests.conftest import run_cli, wait_for

pytestmark = pytest.mark.integration


def counts(settings: Settings, names: list[str]) -> dict[str, int]:
    admin = KafkaAdminClient(**settings.kafka_client_kwargs())
    try:
        return partition_counts(admin, names)
    finally:
        admin.close()


def test_create_raise_and_refuse_to_lower(kafka_settings: Settings) -> None:
    s = kafka_settings
    cpwatch_topics = [s.topic(spec.name) for spec in t.TOPICS]
    start = s.topic_partitions
    assert set(counts(s, cpwatch_topics).values()) == {start}
    # What a worker's Faust app would have made: its by-symbol input, sized like the rest.
    valuation_input = internal_topic_names(s)[0]
    admin = KafkaAdminClient(**s.kafka_client_kwargs())
    admin.create_topics([NewTopic(valuation_input, start, s.topic_replication)])
    admin.close()

    # A fresh prefix: nothing exists there, so every topic is created with the count asked.
    fresh = s.model_copy(update={"topic_prefix": f"{s.topic_prefix}fresh-"})
    made = raise_partitions(fresh, 3)
    assert sorted(c.topic for c in made) == sorted(fresh.topic(x.name) for x in t.TOPICS)
    assert all(c.before is None and c.after == 3 for c in made)
    names = [fresh.topic(x.name) for x in t.TOPICS]
    # New topics reach the brokers' metadata a moment after creation.
    wait_for(lambda: len(counts(fresh, names)) == len(names), timeout=30)
    assert set(counts(fresh, names).values()) == {3}

    raised = raise_partitions(s, start + 2)
    assert {c.topic: (c.before, c.after) for c in raised} == {
        n: (start, start + 2) for n in [*cpwatch_topics, valuation_input]
    }
    every = [*cpwatch_topics, valuation_input]
    wait_for(lambda: set(counts(s, every).values()) == {start + 2}, timeout=30)

    assert raise_partitions(s, start + 2) == []  # already there: nothing to do

    with pytest.raises(PartitionError, match="refusing to lower partitions") as info:
        raise_partitions(s, start)
    assert f"{s.topic(t.NEWS)} ({start + 2})" in str(info.value)
    assert set(counts(s, [*cpwatch_topics, valuation_input]).values()) == {start + 2}

    # The command line says the same and exits 2; raising prints what it means for keyed state.
    low = run_cli(s, "topics", "create", "--partitions", "1", timeout=120)
    assert low.returncode == 2, low.stderr
    said = " ".join(low.stderr.split())  # rich wraps long lines
    assert "refusing to lower partitions to 1" in said
    assert "Nothing was changed" in said
    up = run_cli(s, "topics", "create", "--partitions", str(start + 3), timeout=120)
    assert up.returncode == 0, up.stderr
    said = " ".join(up.stderr.split())
    assert f"{s.topic(t.PRICE_TICKS)}: {start + 2} -> {start + 3}" in said
    assert "workers stopped" in said
    wait_for(lambda: set(counts(s, cpwatch_topics).values()) == {start + 3}, timeout=30)
