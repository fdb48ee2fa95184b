"""Faust's flow control, minus the clear that threw away messages fetched at start-up.

mode's ``FlowControlEvent.resume()`` empties every channel and stream queue it manages. That
clear is meant for the end of a rebalance: what was fetched under the old assignment is stale,
and the fetch restarts from the committed offsets. But Faust's recovery resumes twice: when it
starts reading the changelogs (or, with nothing to restore, as it resumes the streams), and again
once it has sought the stream partitions to their committed offsets and declares the worker
ready. Between the two, the fetcher already delivers the new assignment's messages; the second
resume discarded them. Nothing processed or acknowledged them, and Faust's own seek could not
bring them back: its read offset had moved on with the batch it was delivering, so the re-fetched
copies were dropped as already read.

The tests' traces showed it on every restart with news waiting: the first one to three messages
of each partition went missing (the input-position guard read them back once a later message
revealed the hole), and when they were a partition's last messages the agent waited for good,
while Faust's commit for that partition stood still behind them.

Here a resume while flow is already active leaves the queues alone: nothing was suspended, so
nothing in them is stale. A resume after a suspension (a rebalance) clears as before.
"""

from __future__ import annotations

from mode.utils.queues import FlowControlEvent


class KeepingFlowControl(FlowControlEvent):
    def resume(self) -> None:
        if self.is_active():
            return  # flowing already: the queues hold the current assignment's messages
        super().resume()
