"""The worker's long-lived heap, kept out of the garbage collector's full passes.

What a worker builds while it starts (modules, the classifier's model, Faust's app, agents,
clients) lives as long as the process, yet every full collection (generation 2) walked all of
it: pauses of 130 ms on the event loop, two per 100,000 ticks in bench_pipeline, a quarter of
the tick path's time. ``gc.freeze`` moves every object that exists into a permanent generation
that collections skip; objects made afterwards are collected as before, and reference counting
still frees frozen objects that are no longer used (only cycles among them stay).
"""

from __future__ import annotations

import gc
import logging

from cpwatch import metrics

log = logging.getLogger(__name__)


def freeze_long_lived(when: str) -> int:
    """Freeze what exists now; returns the number of objects frozen so far."""
    gc.freeze()
    frozen = gc.get_freeze_count()
    metrics.GC_FROZEN.set(frozen)
    log.info("gc: %d objects frozen (%s)", frozen, when)
    return frozen
