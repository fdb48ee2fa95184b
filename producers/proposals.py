"""``cpwatch holdings proposals|accept``: review holdings statements read from the news and send
accepted ones to the ``holdings`` topic, with the article's URL as their source."""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from cpwatch import topics
from cpwatch.exceptions import RecordError
from cpwatch.records import HoldingsProposal, HoldingUpdate
from cpwatch.settings import Settings
from producers.kafka import Producer

READ_TIMEOUT_MS = 2_000


def _read_all(settings: Settings, topic: str) -> list[bytes]:
    """Every value of a topic up to its end offsets now (group-less, nothing committed)."""
    consumer = KafkaConsumer(enable_auto_commit=False, **settings.kafka_client_kwargs())
    try:
        name = settings.topic(topic)
        parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        if not parts:
            return []
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[bytes] = []
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            polled = consumer.poll(timeout_ms=READ_TIMEOUT_MS)
            if not polled:
                break  # nothing more arrives: compaction or retention removed the rest
            out.extend(r.value for records in polled.values() for r in records if r.value)
        return out
    finally:
        consumer.close()


@dataclass(frozen=True)
class Reviewed:
    proposal: HoldingsProposal
    accepted: bool  # a holdings row of this holder, date and source exists


def list_proposals(settings: Settings) -> list[Reviewed]:
    """Proposals in topic order, the last version of each id, with their review state."""
    found: dict[str, HoldingsProposal] = {}
    for raw in _read_all(settings, topics.HOLDINGS_PROPOSALS):
        try:
            p = HoldingsProposal.parse(raw)
        except RecordError:
            continue
        found[p.id] = p
    done = {(h.holder, h.as_of, h.source) for h in _holdings(settings)}
    return [
        Reviewed(p, (p.holder, p.as_of, p.source_url) in done)
        for p in sorted(found.values(), key=lambda p: p.as_of)
    ]


def _holdings(settings: Settings) -> list[HoldingUpdate]:
    rows = []
    for raw in _read_all(settings, topics.HOLDINGS):
        try:
            rows.append(HoldingUpdate.parse(raw))
        except RecordError:
            continue
    return rows


def accept(settings: Settings, proposal_id: str) -> HoldingUpdate:
    """Send proposal ``proposal_id`` to ``holdings``; raise ``LookupError`` or ``ValueError``."""
    match = [r.proposal for r in list_proposals(settings) if r.proposal.id == proposal_id]
    if not match:
        raise LookupError(f"no proposal with id {proposal_id!r} (see `cpwatch holdings proposals`)")
    proposal = match[0]
    earlier = [
        h for h in _holdings(settings) if h.holder == proposal.holder and h.as_of <= proposal.as_of
    ]
    previous = max(earlier, key=lambda h: h.as_of).btc if earlier else None
    update = proposal.to_update(previous)
    with Producer(settings, client_id="cpwatch-holdings-accept") as producer:
        producer.send(topics.HOLDINGS, update.key, update)
    return update
