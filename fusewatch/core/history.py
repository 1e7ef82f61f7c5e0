"""Recorded history: the messages of the three input topics over a time range, as a replay sees them.

A :class:`RecordedMessage` is one input message with its Kafka coordinates; :func:`merged` puts the messages of
several partitions into replay order: each partition's messages in offset order (so every asset's data keeps
the order it was sent in), partitions interleaved by record timestamp (event time).

>>> a = [RecordedMessage("vibration", 0, o, t, b"a", b"") for o, t in ((0, 10), (1, 30))]
>>> b = [RecordedMessage("frames", 0, o, t, b"a", b"") for o, t in ((0, 20), (1, 5))]
>>> [(m.kind, m.offset) for m in merged([a, b])]
[('vibration', 0), ('frames', 0), ('frames', 1), ('vibration', 1)]
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

TopicKind = Literal["vibration", "frames", "maintenance-logs"]
TOPIC_KINDS: tuple[TopicKind, ...] = ("vibration", "frames", "maintenance-logs")


@dataclass(frozen=True)
class RecordedMessage:
    """One input message: which topic (by kind), partition, offset, record timestamp, key and bytes."""

    kind: TopicKind
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes


def merged(partitions: Iterable[Iterable[RecordedMessage]]) -> Iterator[RecordedMessage]:
    """Messages of every partition in replay order: a partition's own order kept, interleaved by timestamp.

    The merge only ever compares the next message of each partition, so a late message (an older timestamp
    after newer ones in its partition) stays where its partition put it.
    """
    streams = [iter(messages) for messages in partitions]
    heap: list[tuple[int, int, RecordedMessage]] = []
    for index, stream in enumerate(streams):
        first = next(stream, None)
        if first is not None:
            heap.append((first.timestamp_ms, index, first))
    heapq.heapify(heap)
    while heap:
        _, index, message = heapq.heappop(heap)
        yield message
        following = next(streams[index], None)
        if following is not None:
            heapq.heappush(heap, (following.timestamp_ms, index, following))
