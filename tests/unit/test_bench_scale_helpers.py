"""Pure helpers of bench/bench_scale.py: tick counts per key and partition, /metrics parsing."""

from __future__ import annotations

from bench import bench_scale as b
from streams.holder_processor import holder_slot


def test_ticks_per_key_sums_to_n_with_a_partial_last_step() -> None:
    per_key = b._ticks_per_key(33)  # two full steps of 16 keys and one tick of the first
    assert sum(per_key.values()) == 33
    assert per_key[b.KEYS[0]] == 3
    assert all(k == 2 for key, k in per_key.items() if key != b.KEYS[0])


def test_ticks_by_partition_covers_every_tick_on_both_topics() -> None:
    on_ticks, on_symbols = b._ticks_by_partition(400_000)
    assert sum(on_ticks.values()) == sum(on_symbols.values()) == 400_000
    assert set(on_ticks) | set(on_symbols) <= set(range(b.PARTITIONS))


def test_every_partition_carries_the_same_load_on_every_stage() -> None:
    # Kafka balances partitions, not load: with these inputs any even split of the partitions
    # is an even split of the work, so the two-worker figure measures the workers.
    n = len(b.KEYS) * 1000
    on_ticks, on_symbols = b._ticks_by_partition(n)
    share = n // b.PARTITIONS
    assert on_ticks == on_symbols == dict.fromkeys(range(b.PARTITIONS), share)
    slots = sorted(holder_slot(h, b.PARTITIONS) for h, *_ in b.HOLDERS)
    assert slots == list(range(b.PARTITIONS))
    # valuations and alerts are keyed by holder: their sinks' partitions hold one holder each
    assert sorted(b._partition(h) for h, *_ in b.HOLDERS) == list(range(b.PARTITIONS))


def test_parse_metrics_reads_route_ticks_prices_batches_and_bulks() -> None:
    text = (
        "# TYPE cpwatch_records_in_total counter\n"
        'cpwatch_records_in_total{stage="route-ticks",topic="price-ticks"} 1200.0\n'
        'cpwatch_records_in_total{stage="treasury",topic="other"} 7.0\n'
        "# TYPE cpwatch_reference_price_usd gauge\n"
        'cpwatch_reference_price_usd{symbol="BTC-USD"} 101000.5\n'
        "# TYPE cpwatch_records_out_total counter\n"
        'cpwatch_records_out_total{stage="treasury-holders",topic="treasury-valuations"} 30.0\n'
        'cpwatch_records_out_total{stage="treasury",topic="alerts"} 2.0\n'
        'cpwatch_records_out_total{stage="sink",topic="treasury-valuations"} 30.0\n'
        "# TYPE cpwatch_venue_events_total counter\n"
        'cpwatch_venue_events_total{symbol="ETH-USD",venue="va",kind="stale"} 2.0\n'
        'cpwatch_venue_events_total{symbol="ETH-USD",venue="vb",kind="diverging"} 3.0\n'
        "# TYPE cpwatch_processing_seconds histogram\n"
        'cpwatch_processing_seconds_count{stage="treasury"} 4.0\n'
        'cpwatch_processing_seconds_count{stage="treasury-holders"} 5.0\n'
        'cpwatch_processing_seconds_count{stage="classify-news"} 9.0\n'
        "# TYPE cpwatch_es_bulk_seconds histogram\n"
        'cpwatch_es_bulk_seconds_count{index="treasury-valuations"} 11.0\n'
        'cpwatch_es_bulk_seconds_count{index="alerts"} 3.0\n'
        'cpwatch_es_bulk_seconds_count{index="articles"} 8.0\n'
    )
    assert b._parse_metrics(text) == {
        "route_ticks": 1200.0,
        "ref:BTC-USD": 101000.5,
        "valuations_sent": 30.0,
        "venue_events": 5.0,
        "treasury_batches": 4.0,
        "holder_batches": 5.0,
        "valuation_bulk_writes": 11.0,
        "alert_bulk_writes": 3.0,
    }


def test_per_worker_counts_only_symbols_whose_price_moved() -> None:
    before = [{"route_ticks": 10.0, "ref:ETH-USD": 1.0}]
    after = [{"route_ticks": 110.0, "ref:ETH-USD": 1.0, "ref:BTC-USD": 2.0}]
    (row,) = b._per_worker(before, after, [3.14], 15)
    assert row == {
        "cpu_s": 3.1,
        "route_ticks": 100,
        "treasury_symbols": ["BTC-USD"],
        "treasury_ticks": 1,
        "valuations_sent": 0,
        "venue_events": 0,
        "treasury_batches": 0,
        "holder_batches": 0,
        "valuation_bulk_writes": 0,
        "alert_bulk_writes": 0,
    }


def test_median_round_is_a_measured_round() -> None:
    rounds = [{"ratio_per_busiest_worker_cpu": r, "id": i} for i, r in enumerate((1.7, 1.3, 1.9))]
    assert b._median_round(rounds)["id"] == 0
    assert b._median_round(rounds[:2])["id"] == 1  # even count: the lower middle
    assert b._median_round(rounds[1:2])["id"] == 1


def test_box_ceiling_runs_two_spins_at_once() -> None:
    got = b._box_ceiling(repeats=2)
    assert len(got["alone_cpu_s"]) == len(got["pair_slower_cpu_s"]) == 2
    alone, pair = sum(got["alone_cpu_s"]) / 2, sum(got["pair_slower_cpu_s"]) / 2  # medians of 2
    assert abs(got["ratio"] - 2 * alone / pair) < 0.02
    assert 0 < got["ratio"] < 4  # CPU-s, not wall time: no more than ~2 whatever the load


def test_rounds_row_lists_every_round_and_its_ceiling() -> None:
    from bench.run import _rounds

    sc = {
        "rounds": [
            {"ratio_per_busiest_worker_cpu": 1.5, "box_parallel_ceiling": 1.9},
            {"ratio_per_busiest_worker_cpu": 1.75, "box_parallel_ceiling": 1.85},
        ]
    }
    assert _rounds(sc) == "median of 2 alternated rounds: 1.50, 1.75; box ceiling 1.90, 1.85"
    assert _rounds({}) == "one round"
