"""Send a message that cannot be processed to the dead-letter topic, with the reason.

Faust acks a message whose agent raised, so agents catch per event and call this instead:
nothing is lost silently and the rest of the stream flows on.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import faust

from cpwatch.deadletters import letter


async def dead_letter(
    topic: faust.TopicT, stage: str, reason: str, event: faust.EventT | None, payload: bytes | str
) -> Awaitable[Any]:
    """Queue the dead letter; the result resolves once Kafka acknowledged it (a stage that
    saves its input position awaits it first, so a crash cannot lose the letter)."""
    msg = event.message if event is not None else None
    record = letter(
        stage,
        reason,
        payload,
        topic=msg.topic if msg else None,
        partition=msg.partition if msg else None,
        offset=msg.offset if msg else None,
    )
    return await topic.send(key=stage.encode(), value=record.to_bytes())
