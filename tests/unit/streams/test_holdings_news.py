"""Pins streams.holdings_news: holdings statements read from article sentences (our own)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpwatch.records import HoldingsProposal
from streams import holdings_news as hn
from streams.amounts import scan_amounts, scan_btc
from streams.holdings_news import HolderNames, HoldingStatement, extract_holdings, proposals

REGISTRY = """holder,kind,country,btc,as_of
El Salvador,state,SV,1,2024-01-01
Bhutan,state,BT,1,2024-01-01
United States government,state,US,1,2024-01-01
Strategy (MicroStrategy),company,US,1,2024-01-01
Tesla,company,US,1,2024-01-01
"""
NAMES = HolderNames.from_csv_text(REGISTRY)
DAY = datetime(2025, 5, 1, tzinfo=UTC)


def facts(text: str, title: str = "A title") -> list[tuple[str, str, float]]:
    return [(s.holder, s.kind, s.btc) for s in extract_holdings(title, text, NAMES, DAY)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "El Salvador's reserve has grown; its holdings now total about 6,240 BTC.",
            [("El Salvador", "total", 6240)],
        ),
        ("Bhutan moved 400 BTC to an exchange on Monday.", [("Bhutan", "sold", 400)]),
        (
            "MicroStrategy bought 5,000 bitcoin last week, bringing its holdings to 250,000 BTC.",
            [
                ("Strategy (MicroStrategy)", "bought", 5000),
                ("Strategy (MicroStrategy)", "total", 250_000),
            ],
        ),
        (
            "The Salvadoran government purchased 21 BTC on Bitcoin Day.",
            [("El Salvador", "bought", 21)],
        ),
        ("Tesla sold 10,000 bitcoin in the quarter.", [("Tesla", "sold", 10_000)]),
        # Finland is not in the registry: proposed under its gazetteer name.
        ("Finland currently holds 1,500 bitcoin seized by customs.", [("Finland", "total", 1500)]),
    ],
)
def test_statements(text: str, expected: list[tuple[str, str, float]]) -> None:
    assert facts(text) == expected


def test_anaphors_refer_to_the_holder_of_their_kind() -> None:
    text = (
        "Tesla reported its results and the US Securities and Exchange Commission filing "
        "followed. The company now holds 11,500 bitcoin. Officials in the United States sold "
        "2,000 BTC, the filing says, and the government retained 40,000 BTC."
    )
    assert facts(text) == [
        ("Tesla", "total", 11_500),
        ("United States government", "sold", 2000),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Bhutan plans to buy 1,000 BTC next year.",  # a plan
        "El Salvador could hold 10,000 BTC by 2030.",  # a hypothetical
        "The block reward fell to 3.125 BTC after the halving.",  # no holder
        "El Salvador had mined 474 BTC with volcanic energy.",  # mined output, not holdings
        "Bhutan is selling 900 BTC through brokers.",  # a sale still under way
        "El Salvador welcomed 2,000 bitcoin tourists.",  # not an amount of bitcoin
    ],
)
def test_no_statement(text: str) -> None:
    assert facts(text) == []


def test_proposals_are_deterministic_and_become_holdings_rows() -> None:
    statements = extract_holdings(
        "t", "Bhutan bought 100 BTC. Bhutan's holdings now total 12,000 BTC.", NAMES, DAY
    )
    made = proposals(
        statements, NAMES, article_id="a1", title="t", source_url="https://x.test/a", published=DAY
    )
    again = proposals(
        statements, NAMES, article_id="a1", title="t", source_url="https://x.test/a", published=DAY
    )
    assert [p.id for p in made] == [p.id for p in again] and len({p.id for p in made}) == 2
    bought, total = made
    assert (bought.holder_kind, bought.country) == ("state", "BT")
    row = total.to_update(None)
    assert (row.holder, row.btc, row.as_of, row.source) == (
        "Bhutan",
        12_000,
        DAY,
        "https://x.test/a",
    )
    assert bought.to_update(11_900).btc == 12_000
    with pytest.raises(ValueError, match="no earlier holding"):
        bought.to_update(None)
    sold = HoldingsProposal.parse({**bought.to_dict(), "statement": "sold"})
    assert sold.to_update(50).btc == 0  # never below zero


# --- the cheaper scan against the definition it replaced ------------------------------------

_OLD_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def _reference_extract(title: str, text: str) -> list[HoldingStatement]:
    """``extract_holdings`` as it read before the shortcuts (every sentence, every unit)."""
    as_of = DAY.date().isoformat()
    last: dict[str | None, str] = {}
    out: list[HoldingStatement] = []
    seen: set[tuple[str, str, float]] = set()
    for sentence in [title, *_OLD_SENTENCE.split(text)]:
        sentence = sentence.strip()
        if not sentence:
            continue
        holders = NAMES.find(sentence)
        start = 0
        for pos, amount in scan_amounts(sentence):
            if amount.unit != "BTC":
                continue
            clause = sentence[start:pos]
            start = pos + len(amount.text)
            named = [h for p, h in holders if p < pos]
            holder = named[-1] if named else hn._antecedent(sentence[:pos], last)
            kind = hn._kind(clause, sentence[start:])
            if holder is None or kind is None or hn._HEDGE.search(clause) or amount.value <= 0:
                continue
            if (holder, kind, amount.value) not in seen:
                seen.add((holder, kind, amount.value))
                evidence = sentence[: hn.EVIDENCE_CHARS]
                out.append(HoldingStatement(holder, kind, amount.value, as_of, evidence))
        for _, h in holders:
            last[None] = last["state" if h in NAMES.states else "company"] = h
    return out


_FRAGMENTS = (
    "El Salvador|Bhutan's|MicroStrategy|Tesla|the company|the country|its|it| holds| bought"
    "| sold| moved| to an exchange| plans to buy| worth| 6,240 BTC| 21 bitcoin| BTC 2,195"
    "| 1.5 bitcoins| 0 BTC| $7 billion| 300 MW| 12 dollars| and|,|.|. |! |?|\n|\n\n| \t|  "
    "| Bitcoin| BTC|itcoin| now total| U.S.| United States"
).split("|")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_FRAGMENTS), max_size=40),
    st.lists(st.sampled_from(_FRAGMENTS), max_size=8),
)
def test_statements_equal_the_reference_scan(text: list[str], title: list[str]) -> None:
    body, head = "".join(text), "".join(title)
    assert extract_holdings(head, body, NAMES, DAY) == _reference_extract(head, body)


@given(st.text(alphabet="ab .!?\n\t\r\u2028\x1c", max_size=60))
def test_sentences_split_as_before_once_stripped(text: str) -> None:
    def pieces(rx: re.Pattern[str]) -> list[str]:
        return [p.strip() for p in rx.split(text) if p.strip()]

    assert pieces(hn._SENTENCE) == pieces(_OLD_SENTENCE)


@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=30))
def test_scan_btc_is_the_btc_part_of_scan_amounts(parts: list[str]) -> None:
    text = "".join(parts)
    assert scan_btc(text) == [(p, a) for p, a in scan_amounts(text) if a.unit == "BTC"]
