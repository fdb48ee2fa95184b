"""decode_ticks' batch-at-once check (``_canonical``) accepts a batch exactly when the per-row
check accepts every row; its typed path (``_typed``) accepts only batches whose every row the
per-row check accepts, with the same values; and a batch decodes to what
``PriceTick.parse`` gives row by row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpwatch.exceptions import RecordError
from cpwatch.records import PriceTick
from streams.columnar import to_us
from streams.columnar_ticks import _canonical, _docs, _rows_ok, _typed, decode_ticks

T0 = datetime(2025, 3, 1, tzinfo=UTC)
BASE = {
    "schema_version": 1,
    "venue": "kraken",
    "symbol": "BTC-USD",
    "price": 100.5,
    "size": None,
    "ts": "2025-03-01T00:00:00Z",
    "seq": 0,
}
# each field's canonical values, and values the fast path must leave to the reference
FIELDS: dict[str, list[Any]] = {
    "schema_version": [1, 2, True, 1.0, "1"],
    "venue": ["kraken", "bénch", "x" * 64, "x" * 65, " kraken", "", 7, None],
    "symbol": ["BTC-USD", "ETH-USD", "y" * 33, "a\nb", ["BTC"]],
    "price": [100.5, 0.01, 100, -1.0, 0.0, True, "1.5", 1e308],
    "size": [None, 0.5, 0.0, -0.5, 1, "1", float("inf")],
    "ts": [
        "2025-03-01T00:00:00Z",
        "2025-03-01T00:00:00.123456Z",
        "2025-03-01T00:00:00+00:00",
        "2025-02-30T00:00:00Z",
        "2025-03-01T24:00:00Z",
        # 20 characters, the byte check's shape: each breaks one rule of the canonical form
        "0025-03-01T00:00:00Z",
        "2025-03-01T19:60:00Z",
        "2025-03-01T19:00:60Z",
        "2025-03-01 00:00:00Z",
        "2025-03-01T00:00:00z",
        "2025-03-01T00:00:0\u0663Z",  # an Arabic-Indic digit
        "2025-03-01T23:59:59Z",  # and one that keeps them all
        "2025-03-01T00:00:00Z\n2025-03-01T00:00:00Z",
        "9999-01-01T00:00:00Z",
        1740787200,
    ],
    "seq": [0, 5, -1, 1.0, False, None],
}

rows = st.fixed_dictionaries(
    {},
    optional={k: st.sampled_from(v) for k, v in FIELDS.items()},
).map(lambda d: {**BASE, **d})
canonical_rows = st.fixed_dictionaries(
    {k: st.sampled_from(v[:2]) for k, v in FIELDS.items()},
    optional={"extra": st.just(1)},
)


mixed_batches = st.lists(st.one_of(canonical_rows, rows), min_size=1, max_size=30)
dropped_fields = st.sets(st.sampled_from(["size", "seq", "schema_version", "ts"]))


def lines_of(docs: list[dict[str, Any]], drop: set[str]) -> list[bytes]:
    return [orjson.dumps({k: v for k, v in d.items() if k not in drop}) for d in docs]


@settings(max_examples=300, deadline=None)
@given(mixed_batches, dropped_fields)
def test_the_batch_check_accepts_exactly_when_every_row_is_accepted(
    docs: list[dict[str, Any]], drop: set[str]
) -> None:
    parsed = _docs(lines_of(docs, drop))
    cols = [[d.get(k) for d in parsed] for k in ("venue", "symbol", "price", "ts")]
    assert (_canonical(parsed) is not None) == bool(_rows_ok(parsed, *cols).all())


@pytest.mark.parametrize(
    ("name", "value"), [(k, v) for k, vs in FIELDS.items() for v in vs], ids=repr
)
def test_the_typed_path_takes_one_changed_field_only_as_the_per_row_check_does(
    name: str, value: Any
) -> None:
    """Every listed value of every field, alone in an otherwise canonical row: the typed path
    may refuse more than the per-row check (the dict path then decides), never accept more."""
    check_typed([{**BASE, name: value}], set())


@settings(max_examples=300, deadline=None)
@given(mixed_batches, dropped_fields)
def test_the_typed_path_accepts_only_rows_the_per_row_check_accepts_with_their_values(
    docs: list[dict[str, Any]], drop: set[str]
) -> None:
    check_typed(docs, drop)


def check_typed(docs: list[dict[str, Any]], drop: set[str]) -> None:
    lines = lines_of(docs, drop)
    typed = _typed(lines)
    if typed is None:
        return  # the dict path decides; the test below checks the outcome
    # the typed path reads an int price or size as a float, as PriceTick does
    parsed = [
        {k: float(v) if k in ("price", "size") and type(v) is int else v for k, v in d.items()}
        for d in _docs(lines)
    ]
    cols = [[d.get(k) for d in parsed] for k in ("venue", "symbol", "price", "ts")]
    assert bool(_rows_ok(parsed, *cols).all())
    *names_and_prices, stamps = typed
    assert names_and_prices == cols[:3]
    assert [s + "Z" for s in stamps.astype(str).tolist()] == cols[3]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(canonical_rows, canonical_rows, rows), min_size=1, max_size=30),
    st.sets(st.sampled_from(["size", "seq", "schema_version"])),
)
def test_a_batch_decodes_as_the_record_type_parses_each_row(
    docs: list[dict[str, Any]], drop: set[str]
) -> None:
    lines = lines_of(docs, drop)
    cols = decode_ticks(lines)
    want, refused = [], []
    for i, line in enumerate(lines):
        try:
            tick = PriceTick.parse(line)
        except RecordError as exc:
            refused.append((i, exc.field, str(exc)))
            continue
        want.append((i, tick.venue, tick.symbol, tick.price, to_us(tick.ts)))
    got = list(
        zip(
            cols.row.tolist(),
            cols.venue,
            cols.symbol,
            cols.price.tolist(),
            cols.t_us.tolist(),
            strict=True,
        )
    )
    assert got == want
    assert [(b.index, b.field, b.reason) for b in cols.bad] == refused


def test_an_all_canonical_batch_takes_the_batch_path() -> None:
    ticks = [
        PriceTick(
            venue="v", symbol="BTC-USD", price=1.0 + i, size=0.1, ts=T0 + timedelta(seconds=i)
        )
        for i in range(3)
    ]
    parsed = _docs([t.to_bytes() for t in ticks])
    assert _canonical(parsed) is not None
    assert _typed([t.to_bytes() for t in ticks]) is not None
    assert decode_ticks([t.to_bytes() for t in ticks]).price.tolist() == [1.0, 2.0, 3.0]
