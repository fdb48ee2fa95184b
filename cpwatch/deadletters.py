"""One way to give up on a record: the dead letter names the stage, the reason and where the
record came from (topic, partition, offset), is logged, and is counted, whoever sends it.

Each runtime sends the returned record with its own producer and awaits Kafka's
acknowledgement before it commits the input, so a crash cannot lose the letter.
"""

from __future__ import annotations

import logging

from cpwatch import metrics
from cpwatch.records import DeadLetter

log = logging.getLogger("cpwatch.dead_letter")


def letter(
    stage: str,
    reason: str,
    payload: bytes | str | None,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> DeadLetter:
    """The dead letter for one record (``topic``: the full name it was read from)."""
    record = DeadLetter.of(stage, reason, payload, topic=topic, partition=partition, offset=offset)
    log.warning(
        "dead-letter stage=%s topic=%s partition=%s offset=%s reason=%s",
        stage,
        topic,
        partition,
        offset,
        reason[:200],
    )
    metrics.count_dead_lettered(stage, topic)
    return record
