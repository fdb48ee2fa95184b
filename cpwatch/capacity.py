"""Partition planning for N workers: pure arithmetic, no I/O (``cpwatch topics plan``).

Kafka gives each partition of a topic to one member of a consumer group at a time, so:

* a topic that a worker's consumer group reads needs at least as many partitions as there are
  workers, or the extra workers idle on it;
* one partition is worked by one worker core at a time, so a topic's rate divided by its
  partition count must stay under what one worker core sustains on that stage, with headroom.

The per-core figures are measured in docs/benchmarks.md (2-core box shared with Kafka and
Elasticsearch, so they are conservative for a dedicated core; the slower of its last two runs):

* ticks: 98,976 ticks/s end to end through route-ticks and the treasury stage;
* articles: 1,009 articles/s through the classifier on one core (synthetic set); the end-to-end
  news path measured 282 articles/s, with story clustering on a single partition whatever the
  partition count;
* sink documents: 22,573 documents/s into Elasticsearch.

needed = max(workers if the topic is read by a worker group else 1,
             ceil(rate / (per-core capacity x utilisation)))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cpwatch import topics as t

# Measured per worker core (docs/benchmarks.md); names are the stages a topic feeds.
TICKS_PER_CORE = 98_976.0
CLASSIFIER_ARTICLES_PER_CORE = 1_009.0
NEWS_END_TO_END_PER_S = 282.0  # story clustering runs on one partition: not spreadable
SINK_DOCS_PER_CORE = 22_573.0
DEFAULT_UTILISATION = 0.5  # plan each partition to run at half a core: bursts and rebalances

# Topics a consumer group inside the worker reads (agents, sinks, route-ticks, delivery).
# holdings-proposals is read by the CLI without a group; nothing consumes dead-letter.
GROUP_CONSUMED: frozenset[str] = frozenset(
    {
        t.NEWS,
        t.PRICE_TICKS,
        t.HOLDINGS,
        t.ARTICLES,
        t.POLICY_EVENTS,
        t.TREASURY_VALUATIONS,
        t.ALERTS,
        t.DELIVERIES,
    }
)


@dataclass(frozen=True)
class TopicPlan:
    topic: str
    rate: float  # records/s expected on the topic
    capacity: float | None  # records/s one worker core sustains on the stage reading it
    group_consumed: bool
    by_rate: int  # partitions the rate alone needs
    needed: int  # max(by_rate, workers if group-consumed)
    why: str  # the arithmetic, printable

    def per_partition(self) -> float:
        return self.rate / self.needed if self.needed else 0.0


@dataclass(frozen=True)
class Plan:
    workers: int
    ticks_per_s: float
    articles_per_s: float
    utilisation: float
    topics: tuple[TopicPlan, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def partitions(self) -> int:
        """The one CPWATCH_TOPIC_PARTITIONS that satisfies every topic."""
        return max(p.needed for p in self.topics)

    def get(self, topic: str) -> TopicPlan:
        for p in self.topics:
            if p.topic == topic:
                return p
        raise KeyError(topic)


def _rates(ticks: float, articles: float) -> dict[str, tuple[float, float | None]]:
    """Expected rate and per-core capacity of each topic, from the two input rates.

    Every article becomes one ``articles`` record; policy events are at most one per article
    (an upper bound: most articles are not events). Valuations are at most one per holder and
    minute and alerts are rare: their rates are tiny next to the sink's capacity and never set
    the partition count, so they are planned on the worker floor alone.
    """
    return {
        t.NEWS: (articles, CLASSIFIER_ARTICLES_PER_CORE),
        t.PRICE_TICKS: (ticks, TICKS_PER_CORE),
        t.HOLDINGS: (0.0, None),
        t.HOLDINGS_PROPOSALS: (0.0, None),
        t.ARTICLES: (articles, SINK_DOCS_PER_CORE),
        t.POLICY_EVENTS: (articles, SINK_DOCS_PER_CORE),
        t.TREASURY_VALUATIONS: (0.0, SINK_DOCS_PER_CORE),
        t.ALERTS: (0.0, SINK_DOCS_PER_CORE),
        t.DELIVERIES: (0.0, None),
        t.DEAD_LETTER: (0.0, None),
    }


def plan(
    workers: int,
    ticks_per_s: float,
    articles_per_s: float = 0.0,
    *,
    utilisation: float = DEFAULT_UTILISATION,
) -> Plan:
    """Partitions per topic for ``workers`` workers at the given input rates."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if ticks_per_s < 0 or articles_per_s < 0:
        raise ValueError("rates must not be negative")
    if not 0 < utilisation <= 1:
        raise ValueError("utilisation must be in (0, 1]")
    rows: list[TopicPlan] = []
    for spec in t.TOPICS:
        rate, capacity = _rates(ticks_per_s, articles_per_s)[spec.name]
        grouped = spec.name in GROUP_CONSUMED
        floor = workers if grouped else 1
        if capacity is not None and rate > 0:
            budget = capacity * utilisation
            by_rate = max(1, math.ceil(rate / budget))
            rate_why = f"ceil({rate:,.0f} / ({capacity:,.0f} x {utilisation:g})) = {by_rate}"
        else:
            by_rate = 1
            rate_why = "negligible: 1"
        needed = max(floor, by_rate)
        floor_why = f"workers = {workers}" if grouped else "not read by a worker group: 1"
        why = f"max({floor_why}; by rate {rate_why}) = {needed}"
        if spec.partitions is not None:  # a topic pinned to a count keeps it
            needed, why = spec.partitions, f"fixed at {spec.partitions} in cpwatch/topics.py"
        rows.append(TopicPlan(spec.name, rate, capacity, grouped, by_rate, needed, why))
    warnings: list[str] = []
    single_symbol_budget = TICKS_PER_CORE * utilisation
    if ticks_per_s > single_symbol_budget:
        warnings.append(
            f"{ticks_per_s:,.0f} ticks/s: all ticks of one symbol are valued on one partition "
            f"(the treasury stage, holdings are BTC); above ~{single_symbol_budget:,.0f}/s "
            f"({TICKS_PER_CORE:,.0f} per core x {utilisation:g}) of a single symbol no partition "
            "count helps: that stage is bounded by one worker core"
        )
    if articles_per_s > NEWS_END_TO_END_PER_S:
        warnings.append(
            f"{articles_per_s:,.0f} articles/s: the classifier spreads over partitions, but "
            f"story clustering runs on one partition; end to end news measured "
            f"{NEWS_END_TO_END_PER_S:,.0f} articles/s (docs/benchmarks.md)"
        )
    return Plan(workers, ticks_per_s, articles_per_s, utilisation, tuple(rows), tuple(warnings))


def check_existing(p: Plan, existing: dict[str, int]) -> list[str]:
    """Warnings for existing topics (logical name -> partition count) short of the plan."""
    out: list[str] = []
    for row in p.topics:
        have = existing.get(row.topic)
        if have is None:
            continue
        if row.group_consumed and have < p.workers:
            out.append(
                f"{row.topic} has {have} partition(s) for {p.workers} workers: "
                f"{p.workers - have} worker(s) would idle on it"
            )
        elif have < row.needed:
            out.append(f"{row.topic} has {have} partition(s); the plan needs {row.needed}")
    return out


def format_plan(p: Plan, existing: dict[str, int] | None = None) -> str:
    """The plan as text: one line per topic with its arithmetic, then the setting to use."""
    lines = [
        f"plan for {p.workers} worker(s), {p.ticks_per_s:,.0f} ticks/s, "
        f"{p.articles_per_s:,.0f} articles/s, each partition at most {p.utilisation:.0%} "
        "of a worker core",
        "",
    ]
    width = max(len(r.topic) for r in p.topics)
    for r in p.topics:
        have = ""
        if existing is not None:
            count = existing.get(r.topic)
            have = f"  (now {count})" if count is not None else "  (missing)"
        lines.append(f"{r.topic:<{width}}  {r.needed:>3}{have}  {r.why}")
    lines += [
        "",
        f"CPWATCH_TOPIC_PARTITIONS={p.partitions}  (every cpwatch topic is created with one "
        "count; set it on workers too: their tables are sized by it)",
        f"then: cpwatch topics create --partitions {p.partitions}  (raises, never lowers)",
    ]
    warnings = list(p.warnings)
    if existing is not None:
        warnings += check_existing(p, existing)
    lines += [f"warning: {w}" for w in warnings]
    return "\n".join(lines)
