"""runtime.heap: objects that exist at the freeze leave the collector's passes; later garbage,
cycles included, is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from runtime.heap import freeze_long_lived


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture(autouse=True)
def unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()  # back into the oldest generation: other tests' collections see them again


def test_objects_alive_at_the_freeze_leave_the_collectors_passes() -> None:
    before = Node()
    n = freeze_long_lived("test")
    # n is the permanent generation's size at the freeze. It can only shrink afterwards:
    # reference counting still frees frozen objects (here, those of other threads of the
    # test process), and nothing enters it without another freeze.
    assert 0 < gc.get_freeze_count() <= n
    assert REGISTRY.get_sample_value("cpwatch_gc_frozen_objects") == n
    assert not any(o is before for o in gc.get_objects())  # tracked, but in no generation


def test_cycles_made_after_the_freeze_are_still_collected() -> None:
    freeze_long_lived("test")
    ref = weakref.ref(Node())
    assert ref() is not None  # the cycle keeps it alive past its last reference
    gc.collect()
    assert ref() is None
