"""Story clustering without its engine: (story state, batch of events) -> (state, outputs).

The state is one ``StoryClusterer``; what survives a restart is one ``story-entries`` row per
remembered article (kind ``story-entry`` of ``cpwatch/state_versions.py``, version 1:
``{"id", "cluster", "sig", "ts", "v"}``). ``StoryState.from_rows`` rebuilds the clusterer from
those rows (already migrated by the caller), ``StoryProcessor.process`` assigns a batch of
``story-input`` messages and returns, per message, either a policy event or a dead-letter
reason, and the table writes that keep the rows in step (evictions as deletions, in order).

Pure: no Kafka, Faust or Elasticsearch. ``streams/news_agent.py`` reads, calls, writes, sends.
A replayed article keeps its cluster: it adds nothing to the state and its policy event is
the one sent before (same key, same document id), so a replay changes nothing downstream.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cpwatch.exceptions import RecordError
from cpwatch.records import NewsArticle, dumps
from cpwatch.state_versions import VERSION_KEY, current
from streams.dedup import StoryClusterer
from streams.holder_links import HolderLinker

KIND = "story-entry"  # the rows' kind in cpwatch/state_versions.py
MAX_STORIES = 5_000
STORY_WINDOW = timedelta(days=3)
THRESHOLD = 0.25
# Member ids an event document lists, oldest first; ``member_count`` counts them all. Each copy
# of a story re-sends its cluster's document, so a full list grew with the square of the copies
# (a story re-published 400 times sent ~80,000 ids; in make bench's news phase, encoding and
# indexing them was the loop's largest cost after the clusterer itself).
MEMBERS_SHOWN = 50

TableOp = tuple[str, dict[str, Any] | None]  # (article id, row to write | None: delete)


@dataclass
class StoryState:
    """The clusterer of every remembered article; its rows are the table's records."""

    clusterer: StoryClusterer

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[dict[str, Any] | None],
        max_entries: int = MAX_STORIES,
        window: timedelta = STORY_WINDOW,
    ) -> StoryState:
        """Rebuild from ``story-entries`` rows of the current version (``None``: a deleted
        row), oldest ``ts`` first. A row with a bad signature raises ``ValueError``."""
        found = sorted((r for r in rows if r), key=lambda r: r["ts"] or 0)
        return cls(
            StoryClusterer.from_dict(
                {
                    "version": 1,
                    "max_entries": max_entries,
                    "window_s": window.total_seconds(),
                    "threshold": THRESHOLD,
                    "entries": found,
                }
            )
        )

    def row(self, article_id: str) -> dict[str, Any]:
        """The table record of one remembered article, in today's version."""
        return {**self.clusterer.entry_dict(article_id), VERSION_KEY: current(KIND)}

    def rows(self) -> dict[str, dict[str, Any]]:
        """Every record, by article id: what the table holds after the writes applied."""
        return {i: self.row(i) for i in sorted(self.clusterer.ids())}


@dataclass
class StoryOutput:
    """What a batch produced: policy events to send, table writes, dead-letter reasons."""

    events: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value)
    table: list[TableOp] = field(default_factory=list)  # in order
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index in batch, reason)


class StoryProcessor:
    """Assigns articles to story clusters and turns each into its policy event."""

    def __init__(self, linker: HolderLinker) -> None:
        self.linker = linker

    def process(
        self, state: StoryState, batch: Sequence[bytes | None], out: StoryOutput | None = None
    ) -> StoryOutput:
        """Each message in order: a malformed one becomes a reason (``repr`` of the error) and
        leaves the state alone; a valid one is assigned and becomes a policy event keyed by
        its cluster, with the holders it concerns."""
        out = out if out is not None else StoryOutput()
        c = state.clusterer
        for i, raw in enumerate(batch):
            try:
                NewsArticle.parse(raw)  # the article part must still be valid
                doc: dict[str, Any] = json.loads(raw or b"")
                published = (
                    datetime.fromisoformat(doc["published"]) if doc.get("published") else None
                )
                cluster, _, members = c.assign(doc["id"], doc["title"], doc["text"], published)
                out.table.extend((gone, None) for gone in c.take_evicted())
                if doc["id"] in c:
                    out.table.append((doc["id"], state.row(doc["id"])))
            except (RecordError, ValueError, KeyError) as exc:
                out.rejected.append((i, repr(exc)))
                continue
            holders = self.linker.link(doc.get("countries") or (), doc["title"], doc["text"])
            event = {
                **doc,
                "cluster_id": cluster,
                "members": members[:MEMBERS_SHOWN],
                "member_count": len(members),
                "holders": holders,
            }
            out.events.append((cluster.encode(), dumps(event)))
        return out
