"""The Faust floor: a Faust agent that reads a topic in batches and does nothing else.

    python -m bench.faust_floor TOPIC N OUT_FILE DATA_DIR

It separates what Faust's per-message machinery costs from what our agents add: the
pipeline is compared with both a bare aiokafka consumer and this.
"""

from __future__ import annotations

import sys
import time
import uuid

import faust

from cpwatch.settings import Settings
from runtime.faust_app import broker_credentials


def main() -> None:
    topic_name, n, out, datadir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    s = Settings()
    app = faust.App(
        # Under the bench's topic prefix: the app's own topic (its assignor's leader topic) goes
        # with the bench's namespace; unprefixed, 107 of them had piled up on the dev stack.
        f"{s.topic_prefix}faust-floor-{uuid.uuid4().hex[:8]}",
        broker=[f"kafka://{h}" for h in s.kafka_bootstrap.split(",")],
        broker_credentials=broker_credentials(s),
        store="memory://",
        datadir=datadir,  # Faust makes one even for a memory store; the caller removes it
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=16_384,
    )
    seen = {"n": 0, "t0": 0.0}

    @app.agent(app.topic(topic_name, key_serializer="raw", value_serializer="raw"))
    async def drain(stream: faust.StreamT) -> None:
        async for values in stream.take(2_000, within=0.05):
            if not seen["n"]:
                seen["t0"] = time.perf_counter()
            seen["n"] += len(values)
            if seen["n"] >= n:
                with open(out, "w") as f:  # the parent reads this, then stops us
                    f.write(str(seen["n"] / (time.perf_counter() - seen["t0"])))

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None  # the spinner would lower the root logger to DEBUG
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
