"""Query extraction for the candidate index: every clause is implied by the query."""

from __future__ import annotations

from cpwatch.query import parse_query
from notify.candidates import (
    ANY,
    Entry,
    _split,
    admitted,
    candidate_doc,
    event_atoms,
    exact_form,
    passes,
    requirements,
)
from notify.subscriptions import EmailChannel, Filters, Subscription

# What the english analyzer makes of each text (the integration test uses the real one).
WORDS = {
    "bitcoin": ["bitcoin"],
    "mining": ["mine"],
    "reserves": ["reserv"],
    "the": [],
    "El-Salvador": ["el", "salvador"],
    "legal tender": ["legal", "tender"],
    "IMF": ["imf"],
}
PREFIXES = {"mini": "min", "ab": None}


def _req(q: str) -> list[frozenset[str]]:
    tree = parse_query(q)
    assert tree is not None
    return requirements(tree, WORDS, PREFIXES)


def test_and_requires_every_word_or_needs_every_alternative() -> None:
    assert set(_req("bitcoin mining")) == {frozenset({"t:bitcoin"}), frozenset({"t:mine"})}
    assert _req("bitcoin | mining") == [frozenset({"t:bitcoin", "t:mine"})]
    assert set(_req("El-Salvador")) == {frozenset({"t:el"}), frozenset({"t:salvador"})}
    assert set(_req('"legal tender" IMF')) == {
        frozenset({"t:legal"}),
        frozenset({"t:tender"}),
        frozenset({"t:imf"}),
    }


def test_negation_stop_words_and_unsafe_prefixes_require_nothing() -> None:
    assert _req("-bitcoin") == []
    assert _req("the") == []
    assert _req("the | bitcoin") == []  # one alternative may match anything
    assert _req("bitcoin -mining") == [frozenset({"t:bitcoin"})]
    assert _req("mini*") == [frozenset({"p:min"})]


def test_two_passes_keep_the_most_selective_clauses() -> None:
    p = passes([frozenset({"t:imf"}), frozenset({"t:bitcoin"}), frozenset({"t:reserv"})])
    assert p == [["t:bitcoin"], ["t:reserv"]]  # longest tokens first
    assert passes([]) == [[ANY], [ANY]]


def test_exact_form_only_for_single_token_words() -> None:
    tree = parse_query("(bitcoin | IMF) mining -reserves")
    assert tree is not None
    form = exact_form(tree, WORDS)
    assert form is not None
    assert set(form[0]) == {frozenset({"t:bitcoin", "t:imf"}), frozenset({"t:mine"})}
    assert form[1] == {"t:reserv"}
    for q in ('"legal tender"', "El-Salvador bitcoin", "mini* bitcoin", "the bitcoin", "-IMF"):
        tree = parse_query(q)
        assert tree is not None and exact_form(tree, WORDS) is None, q


def test_candidate_doc_and_admission() -> None:
    sub = Subscription(
        name="x",
        query="bitcoin mining -reserves",
        filters=Filters(countries=("PK",)),
        channel=EmailChannel(address="a@example.org"),
    )
    doc = candidate_doc(sub, WORDS, PREFIXES)
    assert doc["exact"] and doc["neg"] == ["t:reserv"] and doc["countries"] == ["PK"]
    assert doc["orgs"] == [ANY]
    events = [
        event_atoms(["bitcoin", "mine"]),
        event_atoms(["bitcoin"]),
        event_atoms(["bitcoin", "mine", "reserv"]),
    ]
    masks: dict[str, int] = {}
    for j, atoms in enumerate(events):
        for a in atoms:
            masks[a] = masks.get(a, 0) | 1 << j
    assert admitted(Entry.of(doc), masks, 0b111) == 0b001
    assert "p:min" in event_atoms(["mine"]) and "p:mi" not in event_atoms(["mi"])


def test_split_maps_analyze_tokens_back_to_their_texts() -> None:
    texts = ["The Mining", "", "El Salvador's"]
    tokens = [
        {"token": "mine", "start_offset": 4},
        {"token": "el", "start_offset": 12},
        {"token": "salvador", "start_offset": 15},
    ]
    out = _split(texts, tokens)
    assert [[t["token"] for t in toks] for toks in out] == [["mine"], [], ["el", "salvador"]]
    assert out[2][0]["start_offset"] == 0
