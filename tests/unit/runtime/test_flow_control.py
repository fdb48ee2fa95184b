"""The app's flow control keeps queued messages on a resume while flowing, and still drops them
on the resume that ends a suspension (runtime/flow_control.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from cpwatch.settings import Settings
from runtime.faust_app import create_app
from runtime.flow_control import KeepingFlowControl


def _queue(flow: FlowControlEvent) -> FlowControlQueue[int]:
    queue: FlowControlQueue[int] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    for i in range(3):
        queue.put_nowait(i)
    return queue


@pytest.mark.parametrize(
    ("flow_cls", "kept"),
    [
        (KeepingFlowControl, 3),
        (FlowControlEvent, 0),  # what the subclass is for: mode's resume empties them while flowing
    ],
)
def test_a_resume_while_flowing(flow_cls: type[FlowControlEvent], kept: int) -> None:
    async def main() -> None:
        flow = flow_cls()
        flow.resume()  # Faust's first resume: recovery starts
        queue = _queue(flow)
        flow.resume()  # Faust's second: the worker is ready
        assert queue.qsize() == kept

    asyncio.run(main())


def test_a_resume_after_a_suspension_still_clears() -> None:
    async def main() -> None:
        flow = KeepingFlowControl()
        flow.resume()
        queue = _queue(flow)
        flow.suspend()  # a rebalance: what is queued belongs to the old assignment
        assert not flow.is_active()
        flow.resume()
        assert queue.qsize() == 0 and flow.is_active()

    asyncio.run(main())


def test_the_worker_app_uses_it_for_its_stream_queues(tmp_path: Path) -> None:
    async def main() -> None:
        app, topics = create_app(Settings(home=tmp_path))
        assert isinstance(app.flow_control, KeepingFlowControl)
        stream = topics["news"].stream()
        app.flow_control.resume()
        queue = stream.channel.queue
        await queue.put(1)
        app.flow_control.resume()
        assert queue.qsize() == 1

    asyncio.run(main())
