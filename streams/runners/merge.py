"""Merge the three input topics of one partition number into event-time order.

A Kafka consumer reads the vibration, frames and maintenance-log partitions at their own pace: fetches are
sized in bytes, so small frames run ahead of 100 kB vibration snapshots by hours of plant time when a backlog
is read. The aligner allows only seconds of lateness, so the worker holds messages here and releases them in
order of their record timestamp (the event time), taking the smallest head among the topics. A topic with
nothing buffered holds the others back, unless it is *caught up* (everything the broker has was read), so live
data is not delayed and a quiet topic (maintenance logs) does not stall the stream.

>>> merger = EventTimeMerger(["vibration", "frames", "logs"])
>>> merger.add("frames", 120, "f1"); merger.add("frames", 180, "f2"); merger.add("vibration", 150, "v1")
>>> merger.release(caught_up=set())      # logs may still bring something older than 120
[]
>>> merger.release(caught_up={"logs"})   # vibration has nothing after 150 yet: f2 must wait
['f1', 'v1']
>>> merger.release(caught_up={"logs", "vibration"})
['f2']
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Collection, Hashable, Iterable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class EventTimeMerger(Generic[Item]):
    """Per-source FIFO queues released in timestamp order (ties: source order, then arrival)."""

    def __init__(self, sources: Iterable[Hashable]) -> None:
        self._order = {source: rank for rank, source in enumerate(sources)}
        self._queues: dict[Hashable, deque[tuple[int, Item]]] = {source: deque() for source in self._order}

    def add(self, source: Hashable, timestamp: int, item: Item) -> None:
        """Buffer ``item`` from ``source``; a source's items must arrive in its own order (a partition's)."""
        self._queues[source].append((timestamp, item))

    def release(self, caught_up: Collection[Hashable]) -> list[Item]:
        """Items that can go now: no source can still send anything older, in timestamp order."""
        out: list[Item] = []
        heads = [(queue[0][0], self._order[s], s) for s, queue in self._queues.items() if queue]
        heapq.heapify(heads)
        while heads:
            _, _, source = heads[0]
            if any(not queue and other not in caught_up for other, queue in self._queues.items()):
                break
            out.append(self._queues[source].popleft()[1])
            heapq.heappop(heads)
            queue = self._queues[source]
            if queue:
                heapq.heappush(heads, (queue[0][0], self._order[source], source))
        return out

    def blocked_by(self) -> list[Hashable]:
        """Sources with nothing buffered while others wait (ask whether they are caught up)."""
        if not any(self._queues.values()):
            return []
        return [source for source, queue in self._queues.items() if not queue]

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())
