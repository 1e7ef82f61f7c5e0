"""The in-process bus of the embedded runner: named topics of keyed messages, each with its own offsets.

It stands in for Kafka when no broker runs: producers ``publish``, the runner ``drain``s the input topics in
publication order. Offsets are per topic and start at 0, so dead letters point at a message as they would on
Kafka (partition 0).

>>> bus = InProcessBus()
>>> bus.publish("fusewatch.vibration", b"pump-01", b"...").offset
0
>>> [(m.topic, m.offset) for m in bus.drain()]
[('fusewatch.vibration', 0)]
>>> bus.pending()
0
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    """One message on the bus."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


class InProcessBus:
    """A FIFO of messages with per-topic offsets (single partition per topic)."""

    def __init__(self) -> None:
        self._queue: deque[Message] = deque()
        self._next_offset: dict[str, int] = {}

    def publish(self, topic: str, key: bytes, value: bytes) -> Message:
        """Append a message; returns it with its offset."""
        offset = self._next_offset.get(topic, 0)
        self._next_offset[topic] = offset + 1
        message = Message(topic, 0, offset, key, value)
        self._queue.append(message)
        return message

    def drain(self) -> Iterator[Message]:
        """Yield and remove the pending messages in publication order."""
        while self._queue:
            yield self._queue.popleft()

    def pending(self) -> int:
        """How many messages wait to be consumed."""
        return len(self._queue)
