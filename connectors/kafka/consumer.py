"""Read fusewatch's topics back: every message from the beginning up to the end offsets seen at the start.

The reader assigns partitions itself (no consumer group, nothing committed), so reading never disturbs the
workers. It is bounded: it stops at the end offsets taken when it starts, or raises after ``timeout_s`` without
progress.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaTimeoutError

from connectors.kafka.admin import probe_broker, unavailable
from connectors.kafka.settings import KafkaSettings
from fusewatch.errors import ServiceUnavailableError, TopicMismatchError


@dataclass(frozen=True)
class Record:
    """One Kafka message with its coordinates."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes


def _assigned_reader(settings: KafkaSettings, role: str, topics: Sequence[str]) -> KafkaConsumer:
    """A consumer with no group, assigned every partition of ``topics``; clear errors for a dead broker or topic."""
    probe_broker(settings)
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.servers(),
            client_id=f"{settings.client_id}-{role}",
            enable_auto_commit=False,
            group_id=None,
            request_timeout_ms=max(settings.timeout_ms, 31_000),
            bootstrap_timeout_ms=settings.timeout_ms,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=settings.max_message_bytes,
        )
    except KafkaTimeoutError as exc:
        raise unavailable(settings, exc) from None
    try:
        partitions = []
        for topic in topics:
            numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                raise TopicMismatchError(f"topic {topic} does not exist")
            partitions += [TopicPartition(topic, number) for number in sorted(numbers)]
        consumer.assign(partitions)
    except BaseException:
        consumer.close()
        raise
    return consumer


def read_topics(settings: KafkaSettings, topics: Sequence[str]) -> Iterator[Record]:
    """Yield every message now in ``topics``, partition by partition in offset order."""
    consumer = _assigned_reader(settings, "reader", topics)
    try:
        partitions = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        consumer.seek_to_beginning(*partitions)
        start = consumer.beginning_offsets(partitions)
        end = {tp: offset for tp, offset in consumer.end_offsets(partitions).items() if offset > start[tp]}
        position = {tp: start[tp] for tp in end}
        deadline = time.monotonic() + settings.timeout_s
        while any(position[tp] < end[tp] for tp in end):
            batch = consumer.poll(timeout_ms=500)
            if batch:
                deadline = time.monotonic() + settings.timeout_s
            elif time.monotonic() > deadline:
                left = {f"{tp.topic}[{tp.partition}]": end[tp] - position[tp] for tp in end if position[tp] < end[tp]}
                raise ServiceUnavailableError(f"no progress for {settings.timeout_s:g} s; messages left: {left}")
            for tp, messages in sorted(batch.items(), key=lambda item: (item[0].topic, item[0].partition)):
                for message in messages:
                    if tp not in end or message.offset >= end[tp]:
                        continue
                    position[tp] = message.offset + 1
                    yield Record(tp.topic, tp.partition, message.offset, message.timestamp, message.key, message.value)
    finally:
        consumer.close()


def follow_topic(
    settings: KafkaSettings, topic: str, *, from_beginning: bool = False, idle_exit_s: float | None = None
) -> Iterator[Record]:
    """Yield the messages of ``topic`` as they arrive (all partitions, no group); stop after ``idle_exit_s``."""
    consumer = _assigned_reader(settings, "tail", [topic])
    try:
        partitions = list(consumer.assignment())
        if from_beginning:
            consumer.seek_to_beginning(*partitions)
        else:
            consumer.seek_to_end(*partitions)
        last = time.monotonic()
        while idle_exit_s is None or time.monotonic() - last < idle_exit_s:
            batch = consumer.poll(timeout_ms=200)
            for tp, messages in batch.items():
                for message in messages:
                    last = time.monotonic()
                    yield Record(tp.topic, tp.partition, message.offset, message.timestamp, message.key, message.value)
    finally:
        consumer.close()
