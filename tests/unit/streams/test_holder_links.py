"""Policy events linked to treasury holders: states by actor country, companies by name."""

from __future__ import annotations

import re
from dataclasses import replace
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.holder_links import HolderLinker

REGISTRY = (resources.files("cpwatch") / "data" / "treasuries.csv").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def linker() -> HolderLinker:
    return HolderLinker.from_csv_text(REGISTRY)


def test_state_holders_come_from_the_registry_countries(linker: HolderLinker) -> None:
    assert linker.by_country["SV"] == ("El Salvador",)
    assert linker.by_country["BT"] == ("Bhutan",)
    assert linker.by_country["US"] == ("United States government",)
    assert "JP" not in linker.by_country  # Metaplanet is a company: no state holder for JP
    assert linker.link(["PK", "SV"], "Pakistan and El Salvador sign", "") == [
        "El Salvador",
        "Pakistan",
    ]
    assert linker.link(["NO"], "Norway plans a mining ban", "") == []


def test_companies_are_linked_by_name_and_alias(linker: HolderLinker) -> None:
    assert linker.link([], "Metaplanet buys more bitcoin", "") == ["Metaplanet"]
    text = "Business intelligence company Strategy said it bought 10,000 more bitcoin."
    assert linker.link([], "A firm adds bitcoin", text) == ["Strategy (MicroStrategy)"]
    assert linker.link([], "MicroStrategy buys", "") == ["Strategy (MicroStrategy)"]
    assert linker.link([], "Flows into IBIT rise", "") == ["iShares Bitcoin Trust (IBIT)"]
    assert linker.link(["US"], "Tesla and Coinbase told to report", "") == [
        "Coinbase",
        "Tesla",
        "United States government",
    ]


def test_common_words_need_proper_noun_context(linker: HolderLinker) -> None:
    # Sentence-initial or in a title-case headline, "Strategy"/"Block" are ordinary words.
    assert linker.link([], "Pakistan Unveils National Bitcoin Strategy", "") == []
    assert linker.link([], "Strategy matters, the minister said", "") == []
    assert linker.link([], "IMF moves to block the plan", "Block grants were cut.") == []
    assert linker.link([], "a treasury strategy", "the strategy of the bank") == []
    assert linker.link([], "x", "Payments firm Block added bitcoin.") == ["Block"]


def test_rows_without_holder_or_country_are_ignored() -> None:
    rows = [
        {"holder": "", "kind": "state", "country": "SV"},
        {"holder": "Atlantis", "kind": "state", "country": ""},
        {"holder": "Atlantis Treasury", "kind": "State", "country": "at"},
    ]
    linker = HolderLinker.from_rows(rows)
    assert dict(linker.by_country) == {"AT": ("Atlantis Treasury",)}
    assert linker.link(["AT", "AT"], "", "") == ["Atlantis Treasury"]


_WORDS = ["Strategy", "Block", "MSTR", "Tesla", "MARA", "Inc", "bought", "bitcoin", "the", "IBIT"]
_WORDS += ["MicroStrategy", "Block Inc", "Riot Blockchain"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(_WORDS + ["MicroStrategy", "Block Inc", "Riot Blockchain"]), max_size=14
    ),
    st.sampled_from([" ", ", ", ". ", "'s ", "-"]),
    st.booleans(),
)
def test_the_any_name_search_changes_no_result(words: list[str], sep: str, headline: bool) -> None:
    """The one-search shortcut must give what the per-name patterns alone give."""
    linker = HolderLinker.from_csv_text(REGISTRY)
    every = replace(linker, any_name=re.compile(""))  # always searches name by name
    text = sep.join(words)
    assert linker.link([], text if headline else "", text) == every.link(
        [], text if headline else "", text
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_WORDS), max_size=14),
    st.lists(st.sampled_from([" ", ".", "!", "?", "\n", "", "_", "'", ". \n"]), min_size=1),
)
def test_a_part_naming_no_holder_is_skipped_as_a_whole(words: list[str], seps: list[str]) -> None:
    """Sentence ends next to names, names glued to words: skipping a part whose whole text
    names no holder changes no link."""
    linker = HolderLinker.from_csv_text(REGISTRY)
    every = replace(linker, any_name=re.compile(""))
    text = "".join(w + seps[i % len(seps)] for i, w in enumerate(words))
    assert linker.link([], text, text) == every.link([], text, text)
