"""cpwatch's query language: words AND/OR/NOT and signs, precedence, rendering, refusals."""

from __future__ import annotations

import json
import re

import pytest

from api.search import (
    And,
    Not,
    Or,
    Phrase,
    QueryError,
    Term,
    build_request,
    parse_params,
    parse_query,
)
from deploy.install import PLUGIN_NAME, PLUGIN_SRC, plugin_fingerprint


@pytest.mark.parametrize(
    ("q", "tree"),
    [
        ("IMF", Term("IMF")),
        ("IMF mining", And((Term("IMF"), Term("mining")))),
        ("IMF AND mining", And((Term("IMF"), Term("mining")))),
        ("+IMF +mining", And((Term("IMF"), Term("mining")))),
        ("IMF && mining", And((Term("IMF"), Term("mining")))),
        ("IMF OR mining", Or((Term("IMF"), Term("mining")))),
        ("IMF || mining", Or((Term("IMF"), Term("mining")))),
        ("IMF | mining", Or((Term("IMF"), Term("mining")))),
        ("bitcoin NOT ban", And((Term("bitcoin"), Not(Term("ban"))))),
        ("bitcoin -ban", And((Term("bitcoin"), Not(Term("ban"))))),
        ("bitcoin !ban", And((Term("bitcoin"), Not(Term("ban"))))),
        ("NOT NOT ban", Term("ban")),
        # OR binds tighter than AND, as in Google; NOT tighter still.
        (
            "reserve Texas OR Arizona",
            And((Term("reserve"), Or((Term("Texas"), Term("Arizona"))))),
        ),
        (
            "a AND b OR c",
            And((Term("a"), Or((Term("b"), Term("c"))))),
        ),
        ("NOT a OR b", Or((Not(Term("a")), Term("b")))),
        ("(a b) OR c", Or((And((Term("a"), Term("b"))), Term("c")))),
        (
            'IMF OR "International Monetary Fund" crypto',
            And((Or((Term("IMF"), Phrase("International Monetary Fund"))), Term("crypto"))),
        ),
        ("minin*", Term("minin", prefix=True)),
        ("bitcoin\\*", Term("bitcoin*")),
        ("\\OR", Term("OR")),  # an escaped operator word is a word
        ("or and not", And((Term("or"), Term("and"), Term("not")))),  # only upper case operates
        ("El Salvador - IMF", And((Term("El"), Term("Salvador"), Term("IMF")))),  # lone dash
        ("anti-money", Term("anti-money")),
        ("", None),
    ],
)
def test_parse_tree(q: str, tree: object) -> None:
    assert parse_query(q) == tree


@pytest.mark.parametrize(
    ("q", "rendered"),
    [
        ("IMF mining", "IMF mining"),
        ("IMF OR mining", "IMF | mining"),
        ("reserve Texas OR Arizona", "reserve (Texas | Arizona)"),
        ("(a b) OR c", "(a b) | c"),
        ("bitcoin NOT (reserve OR IMF)", "bitcoin -(reserve | IMF)"),
        ('bitcoin NOT "El Salvador"', 'bitcoin -"El Salvador"'),
        ("drawdown-30", "drawdown\\-30"),
        ("a*b", "a\\*b"),
        ("minin* bitco*", "minin* bitco*"),
        ("bitcoin\\*", "bitcoin\\*"),
    ],
)
def test_rendered_simple_query_string(q: str, rendered: str) -> None:
    p = parse_params(q)
    assert p.q == q and p.expr == rendered
    sqs = build_request(p)["query"]["bool"]["must"][0]["simple_query_string"]
    assert sqs["query"] == rendered and sqs["default_operator"] == "and"


@pytest.mark.parametrize(
    ("q", "words"),
    [
        ("bitcoin~", "fuzzy"),
        ("bitcoin~2 mining", "fuzzy"),
        ('"bitcoin reserve"~3', "proximity"),
        ("bitcoin AND", "AND needs"),
        ("OR bitcoin", "OR needs"),
        ("bitcoin OR", "OR needs"),
        ("bitcoin OR OR mining", "OR needs"),
        ("NOT", "NOT needs"),
        ("(bitcoin mining", "not closed"),
        ("bitcoin mining)", "no opening"),
        ("bitcoin ()", "empty"),
        ('"bitcoin reserve', "not closed"),
        ("*coin", "leading wildcard"),
        ("ab*", "at least"),
    ],
)
def test_refusals_name_q(q: str, words: str) -> None:
    with pytest.raises(QueryError) as exc:
        parse_params(q)
    assert exc.value.param == "q" and words in exc.value.reason


def test_country_codes_are_checked() -> None:
    assert parse_params("x", country=["pk", "SV", "xk"]).filters["country"] == ("PK", "SV", "XK")
    with pytest.raises(QueryError) as exc:
        parse_params("x", country=["XX"])
    assert exc.value.param == "country" and "'XX'" in exc.value.reason
    with pytest.raises(QueryError) as exc:
        parse_params("x", country=["El Salvador"])
    assert "did you mean SV" in exc.value.reason


def test_plugin_sources_agree() -> None:
    """The zip's descriptor, its named component and the Java class name one another."""
    descriptor = (PLUGIN_SRC / "stable-plugin-descriptor.properties").read_text()
    assert f"name={PLUGIN_NAME}\n" in descriptor
    assert "classname" not in descriptor  # a classic-plugin key: stable plugins must not have it
    components = json.loads((PLUGIN_SRC / "named_components.json").read_text())
    (cls,) = components["org.elasticsearch.plugin.analysis.AnalyzerFactory"].values()
    assert list(components["org.elasticsearch.plugin.analysis.AnalyzerFactory"]) == ["english"]
    java = (PLUGIN_SRC / "src" / (cls.replace(".", "/") + ".java")).read_text()
    assert re.search(r'@NamedComponent\("english"\)', java)
    assert plugin_fingerprint("9.2.0") != plugin_fingerprint("9.2.1")
