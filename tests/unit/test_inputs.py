"""The worker's hand on its consumer: pausing without losing a fetched batch, and gaps in an input's offsets."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, cast

import faust
from faust.types import TP

from fusewatch.core.topics import Topics
from streams.runners.inputs import REFETCH_WAIT_S, InputControl, OwnedPartition
from streams.runners.merge import EventTimeMerger
from streams.runners.partition import PartitionProcessor
from streams.settings import StreamSettings

V = "fusewatch.vibration"


class FakeConsumer:
    """The two sets faust's consumer keeps, and its seek."""

    def __init__(self, active: set[TP]) -> None:
        self._active_partitions = active
        self._paused_partitions: set[TP] = set()
        self.sought: list[tuple[TP, int]] = []

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))


class FakeApp:
    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer


def control(consumer: FakeConsumer, now: list[float]) -> InputControl:
    return InputControl(cast(faust.App, FakeApp(consumer)), Counter(), clock=lambda: now[0])


def owned() -> OwnedPartition:
    processor = PartitionProcessor(0, StreamSettings(), Topics(), "test", None, "")
    return OwnedPartition(processor, EventTimeMerger(Topics().inputs))


def test_a_pause_leaves_the_set_the_fetch_loop_iterates_with_untouched() -> None:
    tps = {TP(V, 0), TP("fusewatch.frames", 0)}
    consumer = FakeConsumer(set(tps))
    in_flight = consumer._active_partitions  # what faust's fetch loop holds while it delivers a batch
    control(consumer, [0.0]).pause({TP(V, 0)})
    assert in_flight == tps  # the rest of the batch fetched for vibration[0] is still delivered
    assert consumer._active_partitions == {TP("fusewatch.frames", 0)} and consumer._paused_partitions == {TP(V, 0)}


def test_a_gap_is_fetched_again_once_and_what_came_after_it_is_set_aside() -> None:
    consumer, now = FakeConsumer(set()), [0.0]
    inputs, partition = control(consumer, now), owned()

    async def deliver(offset: int) -> bool:
        accepted = await inputs.in_sequence(partition, V, 0, offset)
        if accepted:
            partition.delivered[V] = offset + 1
        return accepted

    async def scenario() -> list[bool]:
        return [await deliver(o) for o in (10, 11, 14, 15, 12, 13, 14, 12)]

    assert asyncio.run(scenario()) == [True, True, False, False, True, True, True, False]
    assert consumer.sought == [(TP(V, 0), 12)]  # once for the gap 12-13, not again for 15
    stats: Any = inputs.stats
    assert stats["out_of_sequence"] == 2 and stats["delivered_again"] == 1


def test_a_gap_the_broker_really_has_is_crossed_after_the_wait() -> None:
    consumer, now = FakeConsumer(set()), [0.0]
    inputs, partition = control(consumer, now), owned()
    partition.delivered[V] = 20  # 20 is a transaction's commit marker: no record there

    async def scenario() -> list[bool]:
        first = await inputs.in_sequence(partition, V, 0, 21)
        now[0] = REFETCH_WAIT_S / 2
        second = await inputs.in_sequence(partition, V, 0, 21)  # delivered again after the seek: still waits
        now[0] = REFETCH_WAIT_S
        return [first, second, await inputs.in_sequence(partition, V, 0, 21)]

    assert asyncio.run(scenario()) == [False, False, True]
    assert consumer.sought == [(TP(V, 0), 20)] and inputs.stats["offset_gaps"] == 1
