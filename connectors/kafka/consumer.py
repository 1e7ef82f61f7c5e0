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

from connectors.kafka.admin import check_topics
from connectors.kafka.clients import open_client
from fusewatch.core.errors import ServiceUnavailableError, TopicMismatchError
from fusewatch.core.kafka_settings import KafkaSettings


@dataclass(frozen=True)
class Record:
    """One Kafka message with its coordinates."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes


def assigned_reader(
    settings: KafkaSettings, role: str, topics: Sequence[str], fetch_max_bytes: int = 64 * 1024 * 1024
) -> KafkaConsumer:
    """A consumer with no group, assigned every partition of ``topics``; clear errors for a dead broker or topic.

    Close it after use."""
    consumer = open_client(
        KafkaConsumer, settings, role,
        enable_auto_commit=False,
        group_id=None,
        request_timeout_ms=max(settings.timeout_ms, 31_000),
        fetch_max_bytes=max(fetch_max_bytes, settings.max_message_bytes),
        max_partition_fetch_bytes=settings.max_message_bytes,
    )
    try:
        partitions = []
        for topic in topics:
            numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                check_topics(settings, [topic])  # names the cause: not authorized, missing, wrong partitions
                raise TopicMismatchError(f"topic {topic} does not exist")
            partitions += [TopicPartition(topic, number) for number in sorted(numbers)]
        if partitions:
            consumer.assign(partitions)
    except BaseException:
        consumer.close()
        raise
    return consumer


def read_topics(settings: KafkaSettings, topics: Sequence[str]) -> Iterator[Record]:
    """Yield every message now in ``topics``, partition by partition in offset order."""
    consumer = assigned_reader(settings, "reader", topics)
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
    consumer = assigned_reader(settings, "tail", [topic])
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


def offset_ranges(
    settings: KafkaSettings, topics: Sequence[str], start_ns: int | None, end_ns: int | None
) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition of ``topics``, the ``[first, end)`` offsets of a time range: from the first message with a
    record timestamp at or after ``start_ns`` to the first at or after ``end_ns`` (``None``: the log's start or
    its end now). Messages in between are all included, late ones (older timestamps) too."""
    consumer = assigned_reader(settings, "ranges", topics)
    try:
        partitions = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        first, last = consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)

        def at(ns: int | None, default: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
            if ns is None:
                return dict(default)
            found = consumer.offsets_for_times({tp: ns // 1_000_000 for tp in partitions})
            return {tp: last[tp] if found.get(tp) is None else found[tp].offset for tp in partitions}

        starts, ends = at(start_ns, first), at(end_ns, last)
        return {tp: (starts[tp], max(starts[tp], ends[tp])) for tp in partitions}
    finally:
        consumer.close()


def read_partition(settings: KafkaSettings, tp: TopicPartition, start: int, end: int) -> Iterator[Record]:
    """Yield the messages of one partition from offset ``start`` up to ``end`` (exclusive), in offset order."""
    if start >= end:
        return
    consumer = assigned_reader(settings, "range", [], fetch_max_bytes=16 * 1024 * 1024)
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + settings.timeout_s
        while consumer.position(tp) < end:
            batch = consumer.poll(timeout_ms=500, max_records=500)
            messages = batch.get(tp, [])
            if messages:
                deadline = time.monotonic() + settings.timeout_s
            elif time.monotonic() > deadline:
                raise ServiceUnavailableError(f"{tp.topic}[{tp.partition}]: no progress for {settings.timeout_s:g} s"
                                              f" at offset {consumer.position(tp)} (reading up to {end})")
            for message in messages:
                if message.offset >= end:
                    return
                yield Record(tp.topic, tp.partition, message.offset, message.timestamp, message.key, message.value)
    finally:
        consumer.close()
