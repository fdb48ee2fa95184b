"""iso_utc_us spells each time exactly as iso_utc(from_us(t)) does, one at a time."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from streams.alerts import iso_utc
from streams.columnar import from_us, iso_utc_us

# 1900 to 2200, the whole second and each side of it among them
TIMES = st.one_of(
    st.integers(-2_208_988_800_000_000, 7_258_118_400_000_000),
    st.integers(-5, 5).map(lambda d: 1_709_596_800_000_000 + d),
)


@given(st.lists(TIMES, max_size=50))
def test_same_spelling_as_one_at_a_time(times: list[int]) -> None:
    got = iso_utc_us(np.array(times, np.int64))
    assert got == [iso_utc(from_us(t)) for t in times]


def test_microseconds_only_where_set() -> None:
    got = iso_utc_us(np.array([1_709_596_800_000_000, 1_709_596_800_000_001], np.int64))
    assert got == ["2024-03-05T00:00:00Z", "2024-03-05T00:00:00.000001Z"]
