"""Every Kafka topic cpwatch uses, declared once, and their idempotent creation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cpwatch.settings import Settings

NEWS = "news"
PRICE_TICKS = "price-ticks"
HOLDINGS = "holdings"
HOLDINGS_PROPOSALS = "holdings-proposals"  # holdings statements read from the news
POLICY_EVENTS = "policy-events"
TREASURY_VALUATIONS = "treasury-valuations"
ALERTS = "alerts"
DELIVERIES = "deliveries"
DEAD_LETTER = "dead-letter"
# Every article after classification, event or not (feeds the `articles` search index).
ARTICLES = "articles"

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    retention_ms: int = 7 * DAY_MS
    compacted: bool = False
    partitions: int | None = None  # None: settings.topic_partitions
    extra: dict[str, str] = field(default_factory=dict)

    def configs(self) -> dict[str, str]:
        cfg = {"retention.ms": str(self.retention_ms)}
        if self.compacted:
            cfg["cleanup.policy"] = "compact"
            del cfg["retention.ms"]
        cfg.update(self.extra)
        return cfg


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(NEWS, retention_ms=30 * DAY_MS),
    TopicSpec(PRICE_TICKS, retention_ms=7 * DAY_MS),
    # Keyed holder|as_of: compaction keeps each disclosure's last row, so the history stays.
    TopicSpec(HOLDINGS, compacted=True),
    TopicSpec(HOLDINGS_PROPOSALS, compacted=True),  # keyed by proposal id
    TopicSpec(ARTICLES, retention_ms=30 * DAY_MS),
    TopicSpec(POLICY_EVENTS, retention_ms=90 * DAY_MS),
    TopicSpec(TREASURY_VALUATIONS, retention_ms=7 * DAY_MS),
    TopicSpec(ALERTS, retention_ms=90 * DAY_MS),
    TopicSpec(DELIVERIES, retention_ms=30 * DAY_MS),
    TopicSpec(DEAD_LETTER, retention_ms=30 * DAY_MS),
)


def ensure_topics(settings: Settings, specs: tuple[TopicSpec, ...] = TOPICS) -> list[str]:
    """Create any missing topic; return the full names of those created. Safe to repeat."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(client_id="cpwatch-admin", **settings.kafka_client_kwargs())
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name=settings.topic(s.name),
                num_partitions=s.partitions or settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs=s.configs(),
            )
            for s in specs
            if settings.topic(s.name) not in existing
        ]
        if not wanted:
            return []
        try:
            admin.create_topics(wanted)
        except TopicAlreadyExistsError:
            pass  # a concurrent creator won the race; the topic exists, which is all we need
        return [t.name for t in wanted]
    finally:
        admin.close()
