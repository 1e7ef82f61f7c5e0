"""One reader of the ingest benchmark (:mod:`benchmarks.ingest`), run as a subprocess: read ``--count`` messages of the
vibration topic from the beginning, print one JSON line with the timing, exit.

``--mode aiokafka``: a bare :class:`aiokafka.AIOKafkaConsumer` with the vibration partitions assigned and the
worker's fetch sizes, touching only ``len(value)``; ``aiokafka-decode``: the same loop decoding every message with
:func:`fusewatch.core.codec.decode`; ``faust``: a faust app configured as the worker's
(:func:`streams.runners.worker_options.faust_app_settings`, a fresh consumer group), whose agent iterates the
worker's input topics with ``stream.noack().events()`` as the worker does and decodes every message, acknowledging
them in batches of the worker's ``checkpoint_every``. The time runs from the first message to the last, so start-up
and the group join are left out.

    python -m benchmarks.ingest_worker --mode faust --topic-prefix fwbench-1234. --count 3000 --workdir /tmp/x
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from benchmarks.processes import bench_kafka
from fusewatch.core.codec import decode
from fusewatch.core.kafka_settings import KafkaSettings

MODES = ("aiokafka", "aiokafka-decode", "faust")
REPORT = "ingest-report: "  # the line of the report on stdout


@dataclass
class Tally:
    """Messages and bytes read, and the clock at the first and the last message."""

    count: int
    messages: int = 0
    bytes: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def add(self, size: int) -> bool:
        """Count one message of ``size`` bytes; ``True`` once ``count`` messages have been read."""
        now = time.perf_counter()
        if not self.messages:
            self.first_at = now
        self.messages += 1
        self.bytes += size
        self.last_at = now
        return self.messages >= self.count

    def report(self) -> dict[str, Any]:
        """What the parent reads: messages, bytes, seconds from the first message to the last, and the time
        from the start of the reader to its first message.

        >>> tally = Tally(count=2)
        >>> tally.add(10), tally.add(20)
        (False, True)
        >>> report = tally.report()
        >>> report["messages"], report["bytes"], report["seconds"] >= 0
        (2, 30, True)
        """
        return {"messages": self.messages, "bytes": self.bytes, "seconds": self.last_at - self.first_at,
                "startup_s": self.first_at - self.started}


def _finish(tally: Tally) -> None:
    """Print the report and leave at once: the measurement is done, and the clients' orderly shutdown (seconds
    of leaving the group) is not part of it."""
    # to the file descriptor: faust redirects ``sys.stdout`` to its log, and its spinner writes escape codes
    os.write(1, f"\n{REPORT}{json.dumps(tally.report())}\n".encode())
    os._exit(0)


async def read_aiokafka(settings: KafkaSettings, count: int, with_decode: bool) -> Tally:
    """The bare consumer: assigned vibration partitions from the beginning, the worker's fetch settings."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = settings.topics().vibration
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.servers(), group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=settings.max_message_bytes,
        fetch_max_wait_ms=1500,  # as faust's consumer
        request_timeout_ms=round(max(settings.timeout_s, 40.0) * 1000), **settings.client_options(),
    )
    tally = Tally(count)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, number) for number in range(settings.partitions)]  # as created
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    value = cast(bytes, record.value)
                    if with_decode:
                        decode(value)
                    if tally.add(len(value)):
                        return tally
    finally:
        await consumer.stop()


def read_faust(settings: KafkaSettings, count: int, app_id: str, workdir: Path) -> None:
    """The worker's way: its faust app settings, its input topics, ``noack().events()``, then decode."""
    import faust

    from streams.runners.worker_options import WorkerOptions, faust_app_settings

    workdir.mkdir(parents=True, exist_ok=True)
    options = WorkerOptions(app_id=app_id, workdir=workdir)
    app = faust.App(app_id, **faust_app_settings(settings, options))
    inputs = app.topic(*settings.topics().inputs, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")
    tally = Tally(count)

    async def ingest(stream: Any) -> None:
        unacked = []
        async for event in stream.noack().events():
            value: bytes = event.message.value or b""
            decode(value)
            unacked.append(event)
            if len(unacked) >= options.checkpoint_every:
                for held in unacked:
                    held.ack()
                unacked.clear()
            if tally.add(len(value)):
                _finish(tally)

    app.agent(inputs, name="fusewatch-ingest")(ingest)
    faust.Worker(app, loglevel="warn", quiet=True).execute_from_commandline()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--topic-prefix", required=True)
    parser.add_argument("--kafka", default=bench_kafka().bootstrap_servers)
    parser.add_argument("--count", type=int, required=True, help="stop after this many messages")
    parser.add_argument("--app-id", default="fwbench-ingest", help="consumer group of the faust reader")
    parser.add_argument("--workdir", type=Path, default=Path("out/ingest-worker"))
    args = parser.parse_args(argv)
    settings = bench_kafka(bootstrap_servers=args.kafka, topic_prefix=args.topic_prefix)
    if args.mode == "faust":
        read_faust(settings, args.count, args.app_id, args.workdir)
        print("the faust app stopped before reading every message", file=sys.stderr)
        return 1
    _finish(asyncio.run(read_aiokafka(settings, args.count, args.mode == "aiokafka-decode")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
