"""cpwatch.capacity: partition planning arithmetic, and the topics plan command offline."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cpwatch import capacity
from cpwatch import topics as t
from cpwatch.capacity import check_existing, format_plan, plan

ROOT = Path(__file__).resolve().parents[2]


def test_every_group_consumed_topic_gets_at_least_one_partition_per_worker() -> None:
    p = plan(7, ticks_per_s=10, articles_per_s=1)
    for row in p.topics:
        if row.topic in capacity.GROUP_CONSUMED:
            assert row.needed >= 7, row
        else:
            assert row.needed == 1, row
    assert p.partitions == 7


def test_rate_sets_the_count_when_it_needs_more_than_the_workers() -> None:
    # 200,000 ticks/s at half a core of 98,976 ticks/s: ceil(200000 / 49488) = 5 partitions.
    p = plan(2, ticks_per_s=200_000, utilisation=0.5)
    row = p.get(t.PRICE_TICKS)
    assert row.by_rate == math.ceil(200_000 / (capacity.TICKS_PER_CORE * 0.5)) == 5
    assert row.needed == 5
    assert row.per_partition() <= capacity.TICKS_PER_CORE * 0.5
    assert "ceil(200,000 / (98,976 x 0.5)) = 5" in row.why
    assert p.partitions == 5


def test_news_rate_spreads_over_the_classifier_capacity() -> None:
    p = plan(1, ticks_per_s=0, articles_per_s=5_000, utilisation=1.0)
    assert p.get(t.NEWS).needed == math.ceil(5_000 / capacity.CLASSIFIER_ARTICLES_PER_CORE) == 5
    # the sinks take 22,573 docs/s per core: one partition holds 5,000 articles/s
    assert p.get(t.ARTICLES).by_rate == 1


def test_warnings_name_the_limits_no_partition_count_lifts() -> None:
    p = plan(4, ticks_per_s=30_000, articles_per_s=400)
    text = " ".join(p.warnings)
    assert "one partition" in text and "story clustering" in text
    assert plan(4, ticks_per_s=1_000, articles_per_s=10).warnings == ()


def test_existing_topics_short_of_workers_are_warned() -> None:
    p = plan(6, ticks_per_s=100)
    warnings = check_existing(p, {t.NEWS: 4, t.ALERTS: 8, t.DEAD_LETTER: 1})
    assert warnings == ["news has 4 partition(s) for 6 workers: 2 worker(s) would idle on it"]
    out = format_plan(p, {t.NEWS: 4})
    assert "news" in out and "(now 4)" in out and "(missing)" in out
    assert "CPWATCH_TOPIC_PARTITIONS=6" in out
    assert "warning: news has 4 partition(s) for 6 workers" in out


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"workers": 0, "ticks_per_s": 1}, "workers"),
        ({"workers": 1, "ticks_per_s": -1}, "negative"),
        ({"workers": 1, "ticks_per_s": 1, "utilisation": 0}, "utilisation"),
    ],
)
def test_bad_input_is_refused(kw: dict[str, float], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        plan(**kw)  # type: ignore[arg-type]


def test_capacities_are_the_benchmark_figures() -> None:
    """The constants are the figures docs/benchmarks.md reports: they cannot drift apart."""
    bench = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for value in (
        capacity.TICKS_PER_CORE,
        capacity.CLASSIFIER_ARTICLES_PER_CORE,
        capacity.NEWS_END_TO_END_PER_S,
        capacity.SINK_DOCS_PER_CORE,
    ):
        assert f"{value:,.0f}" in bench, value


def test_group_consumed_topics_are_read_by_the_worker() -> None:
    """Every topic the plan treats as group-consumed is named by a worker stage's source."""
    sources = "".join(
        p.read_text(encoding="utf-8")
        for d in ("streams", "sinks", "notify")
        for p in (ROOT / d).glob("*.py")
    )
    consts = {getattr(t, n): n for n in dir(t) if n.isupper() and isinstance(getattr(t, n), str)}
    for topic in capacity.GROUP_CONSUMED:
        assert re.search(rf"\bt\.{consts[topic]}\b", sources), topic


def test_plan_command_without_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    from app import cli
    from cpwatch.settings import get_settings

    monkeypatch.setenv("CPWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # nothing listens there
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli.app, ["topics", "plan", "--workers", "3", "--ticks-per-s", "1000"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "CPWATCH_TOPIC_PARTITIONS=3" in result.output
    assert "price-ticks" in result.output


def test_internal_topics_raised_with_the_rest_exist_in_the_worker() -> None:
    """topics.INTERNAL_SIZED names Faust topics by hand: each must still be declared."""
    sources = "".join(
        p.read_text(encoding="utf-8")
        for d in ("streams", "notify", "cpwatch")
        for p in (ROOT / d).glob("*.py")
        if p.name != "topics.py"
    )
    for name in t.INTERNAL_SIZED:
        base = name.removesuffix("-changelog")
        assert f'"{base}"' in sources, name
