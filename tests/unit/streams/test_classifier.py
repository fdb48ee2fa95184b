"""Unit tests of the crypto-policy classifier on short articles written for these tests."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.classifier import Classification, classify
from streams.gazetteer import PLACES
from streams.lexicon import CATEGORIES

SEED_TITLE = (
    "Pakistan signs letter of intent with El Salvador's Bitcoin office; IMF objects to mining plan"
)
SEED_TEXT = (
    "Pakistan's crypto council signed a letter of intent with El Salvador's Bitcoin Office on "
    "Monday, after the council's chief met President Nayib Bukele in San Salvador. The agreement "
    "covers cooperation on public sector bitcoin adoption and crypto regulation.\n"
    "The International Monetary Fund objected to the Pakistan government's plan to allocate "
    "2,000 MW of electricity to bitcoin mining, saying subsidised power for miners would distort "
    "the energy market. The IMF reviews Pakistan's $7 billion loan programme next month.\n"
    "Pakistan also plans a strategic bitcoin reserve, the finance ministry said. El Salvador "
    "holds about 6,100 BTC in its national reserve, the Bitcoin Office said."
)


def test_seed_like_article_is_caught_exactly() -> None:
    c = classify(SEED_TITLE, SEED_TEXT)
    assert c.is_policy_event
    assert c.countries == ["PK", "SV"]
    assert c.categories == ["cooperation", "mining_energy", "multilateral", "reserve"]
    assert "IMF" in c.orgs
    got = {(a.unit, a.value) for a in c.amounts}
    assert {("MW", 2000.0), ("USD", 7e9), ("BTC", 6100.0)} <= got
    assert 0.0 < c.severity <= 1.0
    assert c.evidence


def test_legal_tender_repeal() -> None:
    c = classify(
        "Paraguay's parliament repeals bitcoin legal tender law",
        "Paraguay's Congress voted on Thursday to strip bitcoin of its legal tender status, two "
        "years after the law was passed. Lawmakers said the cryptocurrency would remain legal "
        "to hold but businesses no longer have to accept it.",
    )
    assert c.is_policy_event
    assert "legal_tender" in c.categories
    assert c.countries == ["PY"]


def test_tax_proposal_gets_taxation_only() -> None:
    c = classify(
        "Ghana proposes 10% tax on crypto gains",
        "Ghana's finance ministry proposed a 10% capital gains tax on profits from crypto "
        "assets in its budget on Wednesday. The tax would apply to gains above a threshold, "
        "the minister told parliament.",
    )
    assert c.is_policy_event
    assert c.categories == ["taxation"]
    assert c.countries == ["GH"]


def test_cbdc_pilot() -> None:
    c = classify(
        "Central bank of Jamaica expands CBDC pilot to small merchants",
        "The Bank of Jamaica said its central bank digital currency pilot will expand to small "
        "merchants in May. The governor said the digital currency aims to cut payment costs.",
    )
    assert c.is_policy_event
    assert c.categories == ["cbdc"]
    assert c.countries == ["JM"]


def test_mining_ban_with_megawatts() -> None:
    c = classify(
        "Kosovo government bans crypto mining amid power shortage",
        "Kosovo's government banned cryptocurrency mining on Tuesday after power cuts. Police "
        "seized mining rigs drawing 1.5 GW across the country, the economy ministry said.",
    )
    assert c.is_policy_event
    assert "mining_energy" in c.categories
    assert c.countries == ["XK"]
    assert any(a.unit == "MW" and a.value == 1500.0 for a in c.amounts)


def test_price_analysis_is_not_an_event() -> None:
    c = classify(
        "Bitcoin rallies 8% as traders eye all-time high",
        "Bitcoin jumped 8% to $67,000 on Friday as traders bet on new highs. Analysts said the "
        "price faces resistance near $69,000 and liquidations of short positions topped $200 "
        "million. Ether rose 5%.",
    )
    assert not c.is_policy_event
    assert c.categories == [] and c.countries == []
    assert c.severity == 0.0


def test_hack_is_not_an_event() -> None:
    c = classify(
        "Hackers drain $50 million from crypto bridge",
        "A cross-chain bridge was exploited for $50 million in ether on Sunday. The attacker "
        "used stolen keys, the team said, adding it is working with investigators.",
    )
    assert not c.is_policy_event


def test_company_treasury_buy_is_not_an_event() -> None:
    c = classify(
        "Software maker buys 5,000 bitcoin for its treasury",
        "The company bought 5,000 bitcoin for about $300 million, its CEO said on Monday. Its "
        "shares rose 6% in premarket trading after the quarterly earnings report. The firm now "
        "holds 20,000 BTC.",
    )
    assert not c.is_policy_event
    assert c.countries == []


def test_non_crypto_policy_news_keeps_its_country() -> None:
    c = classify(
        "World Bank approves $500 million loan for Morocco",
        "The World Bank approved a $500 million loan for Morocco on Friday to support water "
        "projects. Morocco's finance ministry said the funds would be spent over five years.",
    )
    assert not c.is_policy_event
    assert c.countries == ["MA"]
    assert c.amounts[0].value == 5e8


def test_country_in_passing_is_not_emitted() -> None:
    c = classify(
        "Brazil's central bank sets rules for crypto exchanges",
        "Brazil's central bank published rules on Monday requiring crypto exchanges to obtain a "
        "licence. The regulator said the framework follows similar licensing rules for virtual "
        "asset providers. Brazilian lawmakers passed the crypto law in 2022. Officials noted "
        "rules in Japan as an example.",
    )
    assert c.is_policy_event
    assert c.countries == ["BR"]
    assert "regulation" in c.categories


def test_to_dict_is_json_ready() -> None:
    d = classify(SEED_TITLE, SEED_TEXT).to_dict()
    assert set(d) == {
        "is_policy_event",
        "categories",
        "countries",
        "orgs",
        "amounts",
        "severity",
        "evidence",
    }
    assert json.loads(json.dumps(d)) == d


def test_deterministic() -> None:
    assert classify(SEED_TITLE, SEED_TEXT) == classify(SEED_TITLE, SEED_TEXT)


_ISO = set(PLACES)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), st.text(max_size=3000))
def test_classify_never_raises_on_arbitrary_text(title: str, text: str) -> None:
    c = classify(title, text)
    assert isinstance(c, Classification)
    assert set(c.categories) <= set(CATEGORIES)
    assert c.categories == sorted(c.categories)
    assert set(c.countries) <= _ISO and c.countries == sorted(c.countries)
    assert 0.0 <= c.severity <= 1.0
    assert c.is_policy_event or not c.categories


_WORDS = st.sampled_from(
    [
        "bitcoin",
        "government",
        "bans",
        "Pakistan",
        "IMF",
        "reserve",
        "tax",
        "CBDC",
        "$5 billion",
        "200 MW",
        "1,000 BTC",
        "legal tender",
        "El Salvador",
        ".",
        "\n",
        "mining",
        "Kosovo's",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_WORDS, max_size=80))
def test_classify_valid_on_cue_word_soup(words: list[str]) -> None:
    text = " ".join(words)
    c = classify(text[:80], text)
    assert set(c.categories) <= set(CATEGORIES)
    assert set(c.countries) <= _ISO
    assert all(a.unit in {"BTC", "USD", "MW"} and a.value >= 0 for a in c.amounts)
