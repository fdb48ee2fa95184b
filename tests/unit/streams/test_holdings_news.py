"""Pins streams.holdings_news: holdings statements read from article sentences (our own)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cpwatch.records import HoldingsProposal
from streams.holdings_news import HolderNames, extract_holdings, proposals

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
