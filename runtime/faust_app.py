"""The Faust application: one factory, configured from ``Settings``, no side effects on import.

Stream agents (streams/) and sink agents (sinks/) register themselves on the app the factory
returns; ``app.worker`` assembles both. Topics carry raw bytes: agents parse them with the
shared record models so a malformed message can be dead-lettered instead of crashing the agent.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from cpwatch import topics as t
from cpwatch.settings import Settings
from runtime import faust_consumer, faust_producer
from runtime.flow_control import KeepingFlowControl
from runtime.quiet_stream import QuietStream


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with the consumer of runtime/faust_consumer.py and the
    producer of runtime/faust_producer.py."""

    Consumer = faust_consumer.Consumer
    Producer = faust_producer.Producer


class App(faust.App):
    # The cpwatch topics, which exist before the worker starts: its producer tracks their
    # metadata from the start (runtime/faust_producer.py).
    written_topics: frozenset[str] = frozenset()

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        """Faust's, but a resume while flowing keeps what is queued (runtime/flow_control.py)."""
        return KeepingFlowControl(loop=self.loop)

    def _new_transport(self) -> faust.types.TransportT:
        """Faust's aiokafka transport, with a consumer that cannot ask aiokafka for every
        partition while Faust has none active and a producer whose metadata cannot lose a
        topic it writes."""
        return Transport(self.conf.broker_consumer, self)


@dataclass(frozen=True)
class Topics:
    """The Faust topic handles, keyed by logical name."""

    by_name: dict[str, faust.TopicT]

    def __getitem__(self, name: str) -> faust.TopicT:
        return self.by_name[name]


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's form of the Kafka security settings. The URL scheme stays ``kafka://``: Faust
    takes TLS and SASL from these credentials, which its consumer, producer and topic admin
    client all share."""
    context = settings.kafka_ssl_context()
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_password
        return faust.SASLCredentials(
            username=settings.kafka_username,
            password=password.get_secret_value() if password else None,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,  # None: SASL_PLAINTEXT
        )
    return faust.SSLCredentials(context) if context else None


def create_app(settings: Settings) -> tuple[faust.App, Topics]:
    app_id = f"{settings.topic_prefix}{settings.faust_app_id}"
    datadir = settings.faust_data_dir or settings.home / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = App(
        app_id,
        broker=[f"kafka://{h}" for h in settings.kafka_bootstrap.split(",")],
        broker_credentials=broker_credentials(settings),
        store="memory://",  # tables are rebuilt from their changelog topics on start
        datadir=str(datadir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=True,
        web_enabled=False,
        autodiscover=False,
        broker_commit_interval=1.0,
        table_standby_replicas=settings.standby_replicas,  # why 0: cpwatch/settings.py
        # A crashed worker's partitions move after 10 s, not Faust's default 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        processing_guarantee=settings.processing_guarantee,
        # Agents send many small records (re-keys, valuations, changelogs): let them batch.
        producer_linger=0.005,
        producer_max_batch_size=262_144,
        # zstd, not lz4: aiokafka compresses lz4 at level 9 (LZ4 HC), 150 MB/s here; zstd's
        # default level ran at 1.4 GB/s and made holder-price frames 9 times smaller. The
        # worker's CPU for bench_pipeline's 90k ticks fell from 0.95 s to 0.62-0.84 s.
        producer_compression_type="zstd",
        stream_buffer_maxsize=16_384,
        # Batching agents sleep while idle instead of waking every ``within`` (quiet_stream.py).
        Stream=QuietStream,
    )
    handles = {
        spec.name: app.topic(
            settings.topic(spec.name),
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partitions or settings.topic_partitions,
        )
        for spec in t.TOPICS
    }
    app.written_topics = frozenset(h.get_topic_name() for h in handles.values())
    return app, Topics(handles)
