"""The in-memory presearcher selects exactly what ``admitted`` admits, entry by entry."""

from __future__ import annotations

import random

from notify.candidates import ANY, Entry, Presearcher, admitted, candidate_doc, event_atoms
from notify.subscriptions import EmailChannel, Subscription

ATOMS = ["t:imf", "t:mine", "t:reserv", "t:bitcoin", "p:min", "p:res", "t:tax"]


def _entry(rng: random.Random) -> Entry:
    def clause() -> tuple[str, ...]:
        return (ANY,) if rng.random() < 0.2 else tuple(rng.sample(ATOMS, rng.choice([1, 1, 2])))

    first = clause()
    second = (ANY,) if first == (ANY,) else clause()  # passes are padded with ANY at the end
    neg = tuple(rng.sample(ATOMS, rng.choice([0, 0, 1])))
    more = tuple((a,) for a in rng.sample(ATOMS, rng.choice([0, 0, 1, 2])))
    return Entry((first, second), neg, rng.random() < 0.5, rng.random() < 0.9, more)


def test_candidates_equal_admitted_per_event() -> None:
    rng = random.Random(3)
    entries = {f"s{i}": _entry(rng) for i in range(300)}
    pre = Presearcher()
    for sid, e in entries.items():
        pre.put(sid, e)
    for _ in range(200):
        atoms = set(rng.sample(ATOMS, rng.randint(0, 4)))
        masks = {a: 1 for a in atoms}
        want = {sid for sid, e in entries.items() if e.events and admitted(e, masks, 1)}
        assert pre.candidates(atoms) == want
    assert pre.exact == {sid for sid, e in entries.items() if e.events and e.exact}


def test_replaced_and_dropped_entries_leave_no_trace() -> None:
    pre = Presearcher()
    pre.put("a", Entry((("t:imf",), ("t:tax",)), (), True))
    pre.put("a", Entry((("t:mine",), (ANY,)), ("t:tax",), False))  # re-extracted
    assert pre.candidates({"t:imf", "t:tax"}) == set()
    assert pre.candidates({"t:mine"}) == {"a"} and pre.exact == set()
    assert pre.candidates({"t:mine", "t:tax"}) == set()  # forbidden atom
    pre.put("b", Entry(((ANY,), (ANY,)), (), True))
    pre.put("c", Entry((("t:imf",), (ANY,)), (), True, events=False))  # alerts only
    assert pre.candidates(set()) == {"b"} and pre.candidates({"t:imf"}) == {"b"}
    pre.drop("a")
    pre.drop("b")
    assert len(pre) == 0 and pre.candidates({"t:mine"}) == set() and pre.exact == set()


def test_an_and_of_three_words_is_exact_with_its_third_clause_in_more() -> None:
    words = {"bitcoin": ["bitcoin"], "mining": ["mine"], "IMF": ["imf"]}
    sub = Subscription(
        name="x", query="bitcoin mining IMF", channel=EmailChannel(address="a@example.org")
    )
    doc = candidate_doc(sub, words, {})
    assert doc["exact"] and doc["t1"] == ["t:bitcoin"] and doc["t2"] == ["t:mine"]
    assert doc["more"] == ["t:imf"]
    pre = Presearcher()
    pre.put(sub.id, Entry.of(doc))
    assert pre.candidates(event_atoms(["bitcoin", "mine"])) == set()
    assert pre.candidates(event_atoms(["bitcoin", "mine", "imf"])) == {sub.id}
