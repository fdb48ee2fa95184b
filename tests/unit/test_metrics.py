"""cpwatch/metrics.py: bounded labels and logical names."""

from __future__ import annotations

import socket

from cpwatch import metrics


def test_logical_topic_strips_prefixes_and_bounds_the_rest() -> None:
    assert metrics.logical_topic("t-x-abc123-news") == "news"
    assert metrics.logical_topic("price-ticks") == "price-ticks"
    assert metrics.logical_topic("t-x-cpwatch-valuation-input") == "valuation-input"
    assert metrics.logical_topic("t-x-cpwatch-holdings-changelog") == "changelog"
    assert metrics.logical_topic("something-else") == "other"
    assert metrics.logical_topic(None) == "none"


def test_logical_index_handles_aliases_and_monthly_indices() -> None:
    assert metrics.logical_index("cpwatch-articles") == "articles"
    assert metrics.logical_index("t-a-treasury-valuations-v1-2025.03") == "treasury-valuations"
    assert metrics.logical_index("unrelated") == "other"


def test_capped_label_folds_overflow_into_other() -> None:
    cap = metrics.CappedLabel(2)
    assert [cap(v) for v in ("a", "b", "c", "a")] == ["a", "b", "other", "a"]


def test_holders_past_the_cap_are_summed_as_other() -> None:
    for i in range(metrics.HOLDER_CAP):
        metrics.set_treasury_value(f"h{i}-cap-test", 1.0)  # fills the cap if not full yet
    metrics.set_treasury_value("late-1", 10.0)
    metrics.set_treasury_value("late-2", 5.0)
    metrics.set_treasury_value("late-1", 20.0)
    other = metrics.REGISTRY.get_sample_value("cpwatch_treasury_value_usd", {"holder": "other"})
    assert other is not None and other >= 25.0
    late = metrics.REGISTRY.get_sample_value("cpwatch_treasury_value_usd", {"holder": "late-1"})
    assert late is None


def test_a_taken_port_is_not_fatal() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert metrics.start_metrics_server(s.getsockname()[1]) is False
    assert metrics.start_metrics_server(0) is False
    assert metrics.producer_metrics_port(9309, "prices") == 9311
    assert metrics.producer_metrics_port(0, "prices") == 0
