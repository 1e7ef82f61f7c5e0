"""A minimal faust-streaming worker used by ``test_services.py`` to show faust works with the local broker.

It appends a ``key length`` line to a file for every message of one topic; the test stops it with SIGTERM.
Configured through the environment: PROBE_KAFKA, PROBE_APP, PROBE_TOPIC, PROBE_OUT, PROBE_DIR.
"""

from __future__ import annotations

import os

import faust
from faust.types import StreamT


def build_app() -> faust.App:
    app = faust.App(
        os.environ["PROBE_APP"],
        broker=f"kafka://{os.environ['PROBE_KAFKA']}",
        store="memory://",
        datadir=os.environ["PROBE_DIR"],
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(os.environ["PROBE_TOPIC"], key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw")

    @app.agent(topic)
    async def count(stream: StreamT[bytes]) -> None:
        async for key, value in stream.items():
            with open(os.environ["PROBE_OUT"], "a", encoding="utf-8") as out:
                out.write(f"{key.decode()} {len(value)}\n")

    return app


if __name__ == "__main__":
    build_app().main()
