"""Merge the three input topics of one partition number into event-time order, with flow control.

A Kafka consumer reads the vibration, frames and maintenance-log partitions at their own pace: fetches are
sized in bytes, so small frames run ahead of 100 kB vibration snapshots by hours of plant time when a backlog
is read, and a producer may simply be slower on one topic than on another. The worker therefore holds messages
here and releases them in order of their record timestamp (the event time), taking the smallest head among
the topics. A topic with nothing buffered holds the others back while

- it has messages on the broker that were not delivered yet (``has_more``), or
- it delivered something, or the head of the merge arrived, less than ``wait_s`` ago (processing time), or
- it is paused by the flow control below (the worker stopped its fetch, so its silence says nothing); when it
  is resumed it counts as having just delivered.

So a topic that merely paused between two fetches, or whose producer is a moment behind, still holds; a quiet
topic (maintenance logs, a plant without cameras) holds a message at most ``wait_s``. What slips past a quiet
topic anyway is caught by the aligner, which holds each asset's windows for its lagging modalities
(:mod:`streams.aligner`).

**Flow control**: the merge counts the bytes it holds. Above ``max_bytes`` the topics that have messages
buffered (those ahead) are to be *paused* (the worker stops fetching them); a paused topic is resumed when its
buffer has drained or the merge holds less than half of ``max_bytes``.

>>> now = [0.0]
>>> merger = EventTimeMerger(["vibration", "frames", "logs"], wait_s=2.0, max_bytes=100, clock=lambda: now[0])
>>> merger.add("frames", 120, "f1", 10); merger.add("frames", 180, "f2", 10)
>>> now[0] = 1.0; merger.add("vibration", 150, "v1", 90)
>>> merger.release()          # logs spoke at 0 s (being assigned counts as speaking): everything waits
[]
>>> [sorted(change) for change in merger.flow()]   # 110 bytes held: pause the topics that are ahead
[['frames', 'vibration'], []]
>>> now[0] = 2.5; merger.release()   # f1 has waited 2.5 s for logs, v1 only 1.5 s
['f1']
>>> now[0] = 3.5; merger.release(has_more={"vibration"})  # f2 waits for what vibration has on the broker
['v1']
>>> merger.release()               # vibration is paused with nothing buffered: f2 waits for it
[]
>>> [sorted(change) for change in merger.flow()]   # 10 bytes left: resume
[[], ['frames', 'vibration']]
>>> now[0] = 5.0; merger.release()   # resumed at 3.5 s, vibration counts as having spoken then
[]
>>> now[0] = 5.5; merger.release()
['f2']
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

Item = TypeVar("Item")


class EventTimeMerger(Generic[Item]):
    """Per-source FIFO queues released in timestamp order (ties: source order, then arrival)."""

    def __init__(self, sources: Iterable[Hashable], wait_s: float = 2.0, max_bytes: int = 64 << 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._order = {source: rank for rank, source in enumerate(sources)}
        self._queues: dict[Hashable, deque[tuple[int, float, int, Item]]] = {s: deque() for s in self._order}
        self.wait_s = wait_s
        self.max_bytes = max_bytes
        self.clock = clock
        started = clock()
        self._last_add = dict.fromkeys(self._order, started)  # being assigned counts as having just spoken
        self.bytes = 0
        self.max_bytes_seen = 0
        self.paused: set[Hashable] = set()

    def add(self, source: Hashable, timestamp: int, item: Item, size: int = 0) -> None:
        """Buffer ``item`` (``size`` bytes) from ``source``; a source's items come in its own (a partition's) order."""
        now = self.clock()
        self._queues[source].append((timestamp, now, size, item))
        self._last_add[source] = now
        self.bytes += size
        self.max_bytes_seen = max(self.max_bytes_seen, self.bytes)

    def release(self, has_more: Collection[Hashable] = ()) -> list[Item]:
        """Items that can go now, in timestamp order: no source that still holds can send anything older.

        ``has_more``: sources with undelivered messages on the broker (they hold however long they take).
        """
        out: list[Item] = []
        now = self.clock()
        heads = [(queue[0][0], self._order[s], s) for s, queue in self._queues.items() if queue]
        heapq.heapify(heads)
        while heads:
            _, _, source = heads[0]
            queue = self._queues[source]
            arrived = queue[0][1]
            if any(not other_queue and (other in has_more or other in self.paused
                                        or now - max(self._last_add[other], arrived) < self.wait_s)
                   for other, other_queue in self._queues.items()):
                break
            _, _, size, item = queue.popleft()
            self.bytes -= size
            out.append(item)
            heapq.heappop(heads)
            if queue:
                heapq.heappush(heads, (queue[0][0], self._order[source], source))
        return out

    def flow(self) -> tuple[set[Hashable], set[Hashable]]:
        """(sources to pause, sources to resume) now; :attr:`paused` is updated to match. Over the budget, every
        source with messages buffered is named (again), since a consumer rebalance may have resumed it."""
        pause: set[Hashable] = set()
        if self.bytes > self.max_bytes:  # all that are ahead, again: a rebalance may have resumed them
            pause = {s for s, queue in self._queues.items() if queue}
        resume = {s for s in self.paused - pause if not self._queues[s] or self.bytes <= self.max_bytes // 2}
        self.paused = (self.paused | pause) - resume
        now = self.clock()
        for source in resume:  # its fetch starts again now: its silence counts from here
            self._last_add[source] = now
        return pause, resume

    def blocked_by(self) -> list[Hashable]:
        """Sources with nothing buffered while others wait (ask whether they have more on the broker)."""
        if not any(self._queues.values()):
            return []
        return [source for source, queue in self._queues.items() if not queue]

    def empty_sources(self) -> list[Hashable]:
        """Sources with nothing buffered."""
        return [source for source, queue in self._queues.items() if not queue]

    def event_time(self) -> dict[Hashable, int]:
        """The newest timestamp buffered per source (sources with nothing buffered are left out)."""
        return {source: queue[-1][0] for source, queue in self._queues.items() if queue}

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())


class WaitClock:
    """Processing time that leaves out the time the worker spent busy: the clock the waits for quiet inputs run on.

    While the worker scores a burst of windows (seconds, on a backlog) its consumer delivers nothing, so a plain
    clock would count every input as quiet and release the others past it. Measured on this clock an input is
    quiet only when the worker was free to receive from it.

    >>> now = [0.0]
    >>> clock = WaitClock(lambda: now[0])
    >>> with clock.busy():
    ...     now[0] += 5.0                 # five seconds of scoring
    >>> now[0] += 1.0; clock()            # one second of waiting
    1.0
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._busy_s = 0.0

    def __call__(self) -> float:
        return self._clock() - self._busy_s

    @property
    def busy_s(self) -> float:
        """Seconds spent inside :meth:`busy` so far."""
        return self._busy_s

    def ns(self) -> int:
        """The same clock in integer nanoseconds (the aligner's processing clock)."""
        return round(self() * 1e9)

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Leave the time spent inside out of the clock (do not nest)."""
        started = self._clock()
        try:
            yield
        finally:
            self._busy_s += self._clock() - started
