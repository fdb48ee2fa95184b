"""Faust's aiokafka producer, tracking topics from its start so its metadata cache never drops
a topic it writes.

aiokafka refreshes a client's metadata cache with the topics it *tracks*, or with every topic on
the broker while it tracks none, and each refresh replaces the cache. A send tracks its topic
only when the topic is missing from the cache. Faust forces a refresh after declaring each
internal topic and changelog at start, while the producer tracks nothing: the cache then holds
every topic, untracked. The first send to a topic missing there tracks that one, and the refresh
it forces drops all the others. A batch lingering in the accumulator (5 ms) for one of them at
that moment has no known leader any more; aiokafka's sender forces refresh after refresh, none of
which asks for its topic, until another send to that topic tracks it or the batch expires
(Faust's producer request timeout: 20 minutes). A quiet stream waits that long, the event loop
busy in metadata updates: in a CI run of tests/integration/test_metrics.py the holder and story
stages stood still for two minutes and the worker did not stop within 30 s of SIGTERM.
tests/integration/test_producer_metadata.py shows the drop on a plain producer.

Tracking the cpwatch topics from the start means no refresh ever asks for every topic, so each
topic in the cache is tracked and stays. Internal topics and changelogs, created by Faust after
this, are tracked by their first send. Refreshes also stay within the namespace's topics instead
of the whole broker's.
"""

from __future__ import annotations

from faust.transport.drivers import aiokafka as faust_aiokafka


class Producer(faust_aiokafka.Producer):
    async def on_start(self) -> None:
        await super().on_start()
        topics = sorted(getattr(self.app, "written_topics", ()))
        if topics:  # none: a bare Faust app, left as aiokafka has it
            self._ensure_producer().client.set_topics(topics)
