"""Every Kafka topic cpwatch uses, declared once, and their idempotent creation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cpwatch.exceptions import CpwatchError

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

    from cpwatch.engine_errors import kafka_errors

    with kafka_errors(settings):
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


# ---------------------------------------------------------------- partition counts

# Faust's own topics sized by CPWATCH_TOPIC_PARTITIONS: the by-symbol input of the treasury
# stage and the changelogs of the tables keyed along it (streams/treasury_agent.py,
# runtime/position_table.py). A table's changelog must have as many partitions as the stream it
# follows, so these move with the cpwatch topics. The single-partition internals (story input,
# alert lifecycle, and their tables' changelogs) stay at 1 on purpose: one owner each.
INTERNAL_SIZED = (
    "valuation-input",
    "holder-prices",
    "treasury-state-changelog",
    "treasury-holders-changelog",
    "news-positions-changelog",
    "match-positions-changelog",
    "route-alerts-positions-changelog",
)

REPARTITION_NOTE = """\
What more partitions mean for keyed data:
- Kafka picks a record's partition from its key (hash mod count). With more partitions most
  keys move: by-symbol ticks, by-holder valuations and alerts, and the Faust tables keyed
  along them (treasury-state per symbol, news/match positions per partition) now have their
  saved record on a partition other than where new messages for the key arrive.
- Order per key only holds among messages written after the change; a key's older messages
  stay on its old partition and are not moved.
- A symbol whose state record is left behind starts afresh on its new partition: level rules
  take their side again, drawdowns their peak, moves their first reference (no alert is
  raised by the change itself, but one near a threshold may be missed or repeated once).
Do it with the workers stopped, after they drained their input (consumer lag 0), then set
CPWATCH_TOPIC_PARTITIONS to the new count on every worker before starting them again."""


@dataclass(frozen=True)
class PartitionChange:
    topic: str  # full name
    before: int | None  # None: created
    after: int


class PartitionError(CpwatchError):
    """A partition count that cannot be applied (Kafka never lowers one)."""


def internal_topic_names(settings: Settings) -> list[str]:
    app_id = f"{settings.topic_prefix}{settings.faust_app_id}"
    return [f"{app_id}-{suffix}" for suffix in INTERNAL_SIZED]


def partition_counts(admin: Any, names: list[str]) -> dict[str, int]:
    """Partition count of each existing topic among ``names`` (full names)."""
    existing = set(admin.list_topics())
    wanted = [n for n in names if n in existing]
    if not wanted:
        return {}
    # kafka-python 3 names the topic "name" (2.x said "topic")
    return {
        d.get("name") or d["topic"]: len(d["partitions"]) for d in admin.describe_topics(wanted)
    }


def _admin(settings: Settings, timeout_ms: int | None = None) -> Any:
    from kafka.admin import KafkaAdminClient

    kw: dict[str, Any] = {}
    if timeout_ms is not None:
        kw = {"request_timeout_ms": timeout_ms, "api_version_auto_timeout_ms": timeout_ms}
    return KafkaAdminClient(client_id="cpwatch-admin", **settings.kafka_client_kwargs(), **kw)


def existing_partitions(settings: Settings, timeout_ms: int = 3000) -> dict[str, int] | None:
    """Logical topic name -> partitions for the cpwatch topics that exist; None when Kafka
    cannot be reached within ``timeout_ms`` (planning goes on without it)."""
    from kafka.errors import KafkaError

    try:
        admin = _admin(settings, timeout_ms)
    except (KafkaError, OSError):
        return None
    try:
        full = {settings.topic(s.name): s.name for s in TOPICS}
        counts = partition_counts(admin, list(full))
        return {full[name]: n for name, n in counts.items()}
    except (KafkaError, OSError):
        return None
    finally:
        admin.close()


def raise_partitions(settings: Settings, total: int) -> list[PartitionChange]:
    """Create missing cpwatch topics with ``total`` partitions and raise every existing one
    (and Faust's topics sized like them) below ``total`` to ``total``. Nothing is changed
    when any of them already has more than ``total``: Kafka cannot lower a count."""
    from kafka.admin import NewPartitions

    if total < 1:
        raise PartitionError("--partitions must be at least 1")
    sized = [settings.topic(s.name) for s in TOPICS if s.partitions is None]
    names = sized + internal_topic_names(settings)
    admin = _admin(settings)
    try:
        counts = partition_counts(admin, names)
        above = {n: c for n, c in sorted(counts.items()) if c > total}
        if above:
            listed = ", ".join(f"{n} ({c})" for n, c in above.items())
            raise PartitionError(
                f"refusing to lower partitions to {total}: Kafka cannot remove partitions, and "
                f"these topics have more: {listed}. Nothing was changed. Fewer partitions "
                "need new topics (a new CPWATCH_TOPIC_PREFIX) and a replay into them."
            )
        changes = [
            PartitionChange(name, None, total)
            for name in ensure_topics(settings.model_copy(update={"topic_partitions": total}))
        ]
        grow = {n: c for n, c in counts.items() if c < total}
        if grow:
            admin.create_partitions({n: NewPartitions(total_count=total) for n in grow})
            changes += [PartitionChange(n, c, total) for n, c in sorted(grow.items())]
        return changes
    finally:
        admin.close()
