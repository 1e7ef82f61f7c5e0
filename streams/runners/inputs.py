"""What a worker keeps for each partition number it owns, and what it does to its consumer for those inputs.

:class:`OwnedPartition` holds the partition's processor, its event-time merge, the offsets delivered and the
messages not yet covered by a checkpoint. :class:`InputControl` keeps the consumer's delivery of the three input
partitions honest and bounded:

- **sequence**: a message after a gap in its partition's offsets (records faust fetched and then dropped) is set
  aside and the partition sought back to the gap;
- **has more**: which input partitions holding the merge back have undelivered messages on the broker;
- **flow control**: pause the input partitions that are ahead while the merge is over its byte budget, resume
  them when the others caught up (:meth:`~streams.runners.merge.EventTimeMerger.flow`), without the loss of
  faust's own ``pause_partitions`` (:meth:`InputControl.pause`);
- **stalls**: an input partition that holds the merge back, has messages on the broker and delivered nothing
  for 5 s is sought to the next offset the merge needs and resumed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, MutableMapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP, EventT

from streams.runners.merge import EventTimeMerger
from streams.runners.partition import PartitionProcessor

log = logging.getLogger("streams.runners.worker")

REFETCH_WAIT_S = 5.0
"""How long after seeking back to a gap a message after it still waits for the missing ones."""


@dataclass
class OwnedPartition:
    """What the worker holds for one assigned partition number."""

    processor: PartitionProcessor
    merger: EventTimeMerger[EventT[Any]]
    delivered: dict[str, int] = field(default_factory=dict)  # topic -> next offset delivered to the agent
    refetching: dict[str, tuple[int, float]] = field(default_factory=dict)  # topic -> (offset sought back to, when)
    unacked: list[EventT[Any]] = field(default_factory=list)
    unacked_since: float = 0.0  # when the oldest of ``unacked`` was processed (monotonic)
    unacked_bytes: int = 0  # input bytes of ``unacked``
    state_bytes: int = 0  # size of the last checkpoint's state: the next waits until as many input bytes came
    last_message: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # the agent and the timer take turns
    saving: asyncio.Future[None] | None = None  # the last checkpoint's write and acknowledgement
    batch: ExitStack | None = None  # the processor's open batch (see Worker._drain)
    batch_end: asyncio.Future[None] | None = None  # the task that ends it once the agent waits

    def next_offset(self, topic: str) -> int:
        """The next offset of ``topic`` this worker expects: after the last delivered, or where the state ends."""
        return self.delivered.get(topic, self.processor.offsets.get(topic, 0))


class InputControl:
    """The worker's hand on its faust consumer for the input partitions it owns (see the module docstring)."""

    def __init__(self, app: faust.App, stats: MutableMapping[str, int],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.stats = stats
        self.clock = clock

    async def in_sequence(self, owned: OwnedPartition, topic: str, partition: int, offset: int) -> bool:
        """Whether ``offset`` is the next message of the input partition; when messages were skipped, fetch again.

        faust has dropped records it had fetched (seen after rebalances), with the consumer's position already
        past them: a message after such a gap is set aside and the partition is sought back to the first missing
        offset, once per gap. Messages seen already (sent again after that seek) are set aside too. Offsets are not
        always contiguous in Kafka (a transactional producer's commit markers, compaction): when the same gap is
        still there ``REFETCH_WAIT_S`` after the seek, the broker has nothing in it and the message is taken.
        """
        expected = owned.delivered.get(topic)
        if expected is None or offset == expected:
            owned.refetching.pop(topic, None)
            return True
        if offset < expected:
            self.stats["delivered_again"] += 1
            return False
        sought = owned.refetching.get(topic)
        now = self.clock()
        if sought is not None and sought[0] == expected and now - sought[1] >= REFETCH_WAIT_S:
            log.info("%s[%d]: offsets %d-%d are not on the broker; going on at %d", topic, partition, expected,
                     offset - 1, offset)
            owned.refetching.pop(topic, None)
            self.stats["offset_gaps"] += 1
            return True
        self.stats["out_of_sequence"] += 1
        if sought is None or sought[0] != expected:
            owned.refetching[topic] = (expected, now)
            log.info("%s[%d]: offset %d delivered after %d; fetching from %d again", topic, partition, offset,
                     expected - 1, expected)
            try:
                await self.app.consumer.seek(TP(topic, partition), expected)
            except Exception:  # no consumer (faust's agent test context)
                owned.refetching.pop(topic, None)
                return True
        return False

    def pause(self, tps: set[TP]) -> None:
        """Stop fetching ``tps`` without losing what was fetched for them.

        faust's ``pause_partitions`` removes them from the very set its fetch loop iterates a fetched batch with,
        and the loop then drops the rest of that batch's records of those partitions (the consumer's position is
        already past them). The paused partitions are therefore left out of a new set of active partitions: the
        batch in flight is delivered whole, the next fetch leaves them out.
        """
        consumer: Any = self.app.consumer
        active, paused = getattr(consumer, "_active_partitions", None), getattr(consumer, "_paused_partitions", None)
        if isinstance(active, set) and isinstance(paused, set):
            consumer._active_partitions = active - tps
            paused.update(tps)
        else:
            consumer.pause_partitions(tps)

    def has_more(self, partition: int, owned: OwnedPartition) -> set[str]:
        """Input topics of this partition number holding the merge that have undelivered messages on the broker."""
        more = set()
        for topic in owned.merger.blocked_by():
            try:
                highwater = self.app.consumer.highwater(TP(str(topic), partition))
            except Exception:  # no consumer to ask (faust's agent test context): nothing more
                continue
            if highwater is not None and highwater > owned.next_offset(str(topic)):
                more.add(str(topic))
        return more

    def flow(self, partition: int, owned: OwnedPartition) -> None:
        """Pause the input topic-partitions that are ahead while the merge holds more than its budget; resume
        them when the others have caught up."""
        paused_before = set(owned.merger.paused)
        pause, resume = owned.merger.flow()
        if not pause and not resume:
            return
        try:
            if pause:
                self.pause({TP(str(topic), partition) for topic in pause})
            if resume:
                self.app.consumer.resume_partitions({TP(str(topic), partition) for topic in resume})
        except Exception:  # no consumer (faust's agent test context): the merge just holds
            return
        for topic in sorted(map(str, pause - paused_before)):
            self.stats["paused"] += 1
            log.info("pausing %s[%d]: %.1f MB held, the other inputs are behind", topic, partition,
                     owned.merger.bytes / 2**20)
        for topic in sorted(map(str, resume)):
            self.stats["resumed"] += 1
            log.info("resuming %s[%d]: %.1f MB held", topic, partition, owned.merger.bytes / 2**20)

    async def resume_stalled(self, partition: int, owned: OwnedPartition, now: float) -> None:
        """Make faust fetch again, from the next offset the merge needs, an input partition that stalled.

        Seen after a takeover: frames[N] had hundreds of messages on the broker and none was delivered for
        minutes, while vibration[N] waited in the merge (faust drops fetched messages from its buffers on a
        rebalance and did not fetch them again); and once, with nothing held at all, after a seek back to a gap.
        When the partition delivered nothing for 5 s, each input with nothing buffered and messages on the broker
        is sought to the offset after the last one delivered and resumed: one that holds the merge back, or one
        that delivered before (an input that never did starts where faust's committed offset is, not at the
        offset a missing checkpoint would say).
        """
        if now - owned.last_message < 5.0 or self.app.rebalancing:
            return
        holding = len(owned.merger) > 0
        for topic in owned.merger.empty_sources():
            if not holding and str(topic) not in owned.delivered:
                continue
            tp = TP(str(topic), partition)
            try:
                highwater = self.app.consumer.highwater(tp)
            except Exception:
                continue
            delivered = owned.next_offset(str(topic))
            if highwater is not None and highwater > delivered:
                log.warning("resuming stalled input %s[%d] at offset %d: %d messages on the broker, none delivered"
                            " for %.0f s", topic, partition, delivered, highwater - delivered, now - owned.last_message)
                await self.app.consumer.seek(tp, delivered)
                self.app.consumer.resume_partitions({tp})
                owned.refetching[str(topic)] = (delivered, self.clock())
                owned.last_message = now  # give the fetch time before trying again
                self.stats["resumed_stalled"] += 1
