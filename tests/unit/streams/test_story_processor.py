"""Story clustering as (state, batch) -> (state, outputs): batches, crashes, replays."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cpwatch import state_versions as sv
from cpwatch.records import NewsArticle, dumps
from streams.holder_links import HolderLinker
from streams.story_processor import MEMBERS_SHOWN, StoryOutput, StoryProcessor, StoryState

REGISTRY = "holder,kind,country,btc,as_of\nEl Salvador,state,SV,1,2024-01-01\n"
T0 = datetime(2025, 3, 1, tzinfo=UTC)
STORIES = [
    (
        "El Salvador adds bitcoin to its national reserve",
        "The government of El Salvador said its strategic bitcoin reserve grew again this week "
        "after the treasury bought more coins, despite the agreement with the IMF that asked "
        "the country to stop public purchases of the asset.",
    ),
    (
        "Pakistan sets up a crypto council to regulate digital assets",
        "Pakistan's finance ministry created a council to draft rules for exchanges, wallets "
        "and mining, and said it would consider surplus electricity for bitcoin miners.",
    ),
    (
        "Czech central bank weighs bitcoin for its reserves",
        "The governor of the Czech National Bank will propose that the board study buying "
        "bitcoin as a small share of the bank's foreign exchange reserves.",
    ),
]


def body(i: int, story: int, hours: float, copy: bool = False, **extra: Any) -> bytes:
    """A ``story-input`` message as the classifier sends it (the article's fields and more)."""
    title, text = STORIES[story]
    if copy:  # another outlet's lightly reworded copy
        text = text.replace("said", "announced").replace("this week", "on Tuesday")
    article = NewsArticle(
        id=f"a{i}",
        source=f"outlet{i}",
        title=title,
        text=text,
        published=T0 + timedelta(hours=hours),
    )
    return dumps({**article.to_dict(), "countries": ["SV"] if story == 0 else [], **extra})


def processor() -> StoryProcessor:
    return StoryProcessor(HolderLinker.from_csv_text(REGISTRY))


def apply(table: dict[str, Any], out: StoryOutput) -> None:
    """What the agent does with the writes (runtime: a Faust table)."""
    for key, row in out.table:
        if row is None:
            table.pop(key, None)
        else:
            table[key] = row


def restore(table: dict[str, Any], **kw: Any) -> StoryState:
    """A restart: the rows through the table's JSON codec, read as runtime.table_state does."""
    rows = json.loads(json.dumps(table))
    return StoryState.from_rows((sv.migrate("story-entry", v) for v in rows.values()), **kw)


def events(out: StoryOutput) -> list[dict[str, Any]]:
    return [json.loads(v) for _, v in out.events]


def ids(out: StoryOutput) -> list[tuple[str, str]]:
    return [(d["id"], d["cluster_id"]) for d in events(out)]


def index(sent: list[tuple[bytes, bytes]]) -> dict[bytes, dict[str, Any]]:
    """cpwatch-events as the sink leaves it: ``_id`` = cluster id, the last document wins."""
    return {key: json.loads(value) for key, value in sent}


def test_copies_of_one_story_are_one_cluster_and_one_event_id() -> None:
    st, table = StoryState.from_rows([]), {}
    out = processor().process(st, [body(1, 0, 0), body(2, 1, 1), body(3, 0, 2, copy=True)])
    apply(table, out)
    docs = events(out)
    assert [d["cluster_id"] for d in docs] == ["a1", "a2", "a1"]
    assert [k for k, _ in out.events] == [b"a1", b"a2", b"a1"]  # keyed by cluster
    assert docs[2]["members"] == ["a1", "a3"] and docs[2]["member_count"] == 2
    assert docs[0]["holders"] == ["El Salvador"] and docs[1]["holders"] == []
    assert out.rejected == []
    assert table == st.rows()  # the writes keep the table equal to the state
    assert all(row["v"] == sv.current("story-entry") for row in table.values())


def test_a_large_story_lists_its_oldest_members_and_counts_them_all() -> None:
    st = StoryState.from_rows([])
    n = MEMBERS_SHOWN + 20
    copies = [body(i, 0, i / 60, copy=bool(i % 2)) for i in range(1, n + 1)]
    docs = events(processor().process(st, copies))
    assert {d["cluster_id"] for d in docs} == {"a1"}
    assert docs[-1]["member_count"] == n
    assert docs[-1]["members"] == [f"a{i}" for i in range(1, MEMBERS_SHOWN + 1)]
    assert docs[MEMBERS_SHOWN - 2]["members"] == [f"a{i}" for i in range(1, MEMBERS_SHOWN)]


def test_a_malformed_message_is_a_reason_and_changes_nothing() -> None:
    st = StoryState.from_rows([])
    before = st.rows()
    bad = [b"{not json", json.dumps({"id": "x"}).encode(), body(4, 0, 0, published="soon")]
    out = processor().process(st, bad)
    assert [i for i, _ in out.rejected] == [0, 1, 2]
    assert all(reason for _, reason in out.rejected)
    assert out.events == [] and out.table == [] and st.rows() == before


def test_a_bad_message_does_not_stop_the_rest_of_its_batch() -> None:
    out = processor().process(StoryState.from_rows([]), [body(1, 0, 0), b"null", body(2, 1, 1)])
    assert [i for i, _ in out.rejected] == [1]
    assert [d["id"] for d in events(out)] == ["a1", "a2"]


def test_a_replayed_batch_changes_nothing() -> None:
    st, table = StoryState.from_rows([]), {}
    batch = [body(1, 0, 0), body(2, 0, 1, copy=True), body(3, 2, 2)]
    first = processor().process(st, batch)
    apply(table, first)
    rows_before = st.rows()
    again = processor().process(st, batch)
    # The same messages again: same keys, same articles in the same clusters, and the index
    # (one document per cluster, the latest wins) ends as it was; members are the cluster's
    # members as known now, so a replayed first copy names the later copies too.
    assert [k for k, _ in again.events] == [k for k, _ in first.events]
    assert ids(again) == ids(first) == [("a1", "a1"), ("a2", "a1"), ("a3", "a3")]
    assert index(first.events + again.events) == index(first.events)
    # No new entry: the rows written are the ones already there.
    assert st.rows() == rows_before
    before = dict(table)
    apply(table, again)
    assert table == before


BATCHES = [
    [body(1, 0, 0), body(2, 1, 1)],
    [body(3, 0, 2, copy=True), b"garbage"],
    [body(4, 2, 3), body(5, 1, 4, copy=True)],
    [body(6, 2, 5, copy=True), body(7, 0, 6)],
]


def run(batches: list[list[bytes]], st: StoryState, table: dict[str, Any]) -> list[StoryOutput]:
    outs = []
    for batch in batches:
        out = processor().process(st, batch)
        apply(table, out)
        outs.append(out)
    return outs


@pytest.mark.parametrize("k", range(1, len(BATCHES)))
def test_a_crash_after_batch_k_resumes_from_the_table(k: int) -> None:
    whole_table: dict[str, Any] = {}
    whole = run(BATCHES, StoryState.from_rows([]), whole_table)

    table: dict[str, Any] = {}
    done = run(BATCHES[:k], StoryState.from_rows([]), table)
    restored = restore(table)
    # Input offsets are committed after the batch, so the last one comes again, then the rest.
    replayed = run(BATCHES[k - 1 :], restored, table)
    # The replayed batch repeats its messages (same keys and articles) and adds nothing.
    assert ids(replayed[0]) == ids(done[-1])
    sent = [e for o in done + replayed for e in o.events]
    assert index(sent) == index([e for o in whole for e in o.events])
    assert [o.events for o in replayed[1:]] == [o.events for o in whole[k:]]
    assert table == whole_table
    assert restored.rows() == whole_table


def test_eviction_deletes_rows_and_a_restore_keeps_the_bound() -> None:
    st, table = StoryState.from_rows([], max_entries=2), {}
    out = processor().process(st, [body(1, 0, 0), body(2, 1, 1), body(3, 2, 2)])
    apply(table, out)
    assert ("a1", None) in out.table
    assert sorted(table) == ["a2", "a3"] == sorted(st.rows())
    # A copy of the evicted story starts a cluster of its own: a1 is forgotten.
    late = processor().process(restore(table, max_entries=2), [body(4, 0, 3, copy=True)])
    assert events(late)[0]["cluster_id"] == "a4"


def test_entries_older_than_the_window_are_evicted() -> None:
    st, table = StoryState.from_rows([]), {}
    out = processor().process(st, [body(1, 0, 0), body(2, 1, 24 * 4)])  # 4 days apart
    apply(table, out)
    assert sorted(table) == ["a2"]


def test_unversioned_rows_of_an_older_release_restore_the_same_clusters() -> None:
    table: dict[str, Any] = {}
    run(BATCHES[:2], StoryState.from_rows([]), table)
    old = {k: {f: v for f, v in row.items() if f != "v"} for k, row in table.items()}
    out = processor().process(restore(old), [body(8, 0, 7, copy=True)])
    assert events(out)[0]["cluster_id"] == "a1"


def test_a_row_with_a_bad_signature_is_refused() -> None:
    row = {"id": "a1", "cluster": "a1", "sig": [1, 2, 3], "ts": 0.0, "v": 1}
    with pytest.raises(ValueError, match="a1"):
        StoryState.from_rows([row])
