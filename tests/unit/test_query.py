"""One query validator for search and subscriptions (cpwatch.query)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cpwatch.query import MAX_QUERY_TERMS, QueryError, check_query
from notify.subscriptions import EmailChannel, Subscription


def test_counts_split_on_operators_not_only_whitespace() -> None:
    with pytest.raises(QueryError, match="prefix"):
        check_query("|".join(c * 3 + "*" for c in "abcdefgh"))  # was one "term"
    with pytest.raises(QueryError, match="terms"):
        check_query("+".join(f"w{i}" for i in range(MAX_QUERY_TERMS + 1)))
    assert check_query('"abc* def" ghi*')[1] == '"abc* def" ghi*'  # quoted * is no prefix


@pytest.mark.parametrize("q", ["bitcoin~", '"a b"~3', "*coin", "ab*", "/bit.*/", "(IMF"])
def test_subscriptions_refuse_what_search_refuses(q: str) -> None:
    with pytest.raises(QueryError):
        check_query(q)
    with pytest.raises(ValidationError):
        Subscription(name="x", query=q, channel=EmailChannel(address="a@example.org"))


def test_subscription_query_renders_like_search() -> None:
    sub = Subscription(
        name="x",
        query=" bitcoin reserve Texas OR Arizona ",
        channel=EmailChannel(address="a@b.org"),
    )
    assert sub.query == "bitcoin reserve Texas OR Arizona"
    assert sub.query_expr == "bitcoin reserve (Texas | Arizona)"
    sqs = sub.event_query("e1")["bool"]["filter"][1]["simple_query_string"]
    assert sqs["query"] == sub.query_expr and "FUZZY" not in sqs["flags"]
