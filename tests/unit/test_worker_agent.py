"""Agent tier: the worker's faust agent under ``agent.test_context()``, with no broker.

Outputs go to a list instead of the producer; everything else (merge, processor, checkpoints, acks) is the
worker's own code.
"""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path

from faust.types import TP

from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.codec import encode
from fusewatch.core.kafka_settings import KafkaSettings
from streams.aligner import AlignerConfig
from streams.runners.partition import OutgoingMessage
from streams.runners.worker import Worker
from streams.runners.worker_options import WorkerOptions
from streams.settings import StreamSettings


def settings() -> StreamSettings:
    """No broker to ask whether a topic has more: the merge does not wait for quiet topics."""
    return StreamSettings(aligner=AlignerConfig(source_wait_s=0))


class ListSink:
    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []
        self.flushes = 0

    async def send(self, messages: list[OutgoingMessage]) -> None:
        self.messages += messages

    async def flush(self) -> None:
        self.flushes += 1


def test_the_agent_scores_windows_dead_letters_bad_input_and_checkpoints(tmp_path: Path) -> None:
    plant = PlantSimulator(SimulatorConfig(assets=1, days=0.02, seed=1))
    sink = ListSink()
    options = WorkerOptions(app_id="fwtest-agent", workdir=tmp_path, checkpoint_every=10,
                            registry=plant.asset_registry())
    worker = Worker(settings(), KafkaSettings(), options, sink=sink)
    agent = worker.app.agents["fusewatch-process"]
    events = list(plant.events())

    async def feed() -> None:
        async with agent.test_context() as tested:
            for event in events:
                await tested.put(encode(event), key=event.asset_id.encode(), timestamp=event.ts / 1e9)
            await tested.put(b"FW\x01\x01garbage", key=b"pump-01", timestamp=events[-1].ts / 1e9)

    asyncio.run(feed())
    topics = worker.topics
    scores = [json.loads(m.value) for m in sink.messages if m.topic == topics.scores]
    letters = [m for m in sink.messages if m.topic == topics.dead_letter]
    assert len(scores) >= 26  # 28 minutes of plant time, the newest windows still open
    assert [s["window_end"] for s in scores] == sorted(s["window_end"] for s in scores)
    assert len(letters) == 1 and dict(letters[0].headers)["reason"].startswith(b"invalid:")
    assert worker.stats["checkpoints"] >= 1 and sink.flushes >= 1
    assert (tmp_path / "checkpoints" / "p0.ckpt").exists()
    assert worker.wait_clock.busy_s > 0  # the scoring and checkpoints above, reported as busy_s


def test_the_timer_checkpoints_once_the_oldest_unacknowledged_message_is_old_one_partition_per_tick(
    tmp_path: Path,
) -> None:
    plant = PlantSimulator(SimulatorConfig(assets=1, days=0.004, seed=1))
    sink = ListSink()
    options = WorkerOptions(app_id="fwtest-timer", workdir=tmp_path, checkpoint_every=10_000,
                            checkpoint_interval_s=5.0, registry=plant.asset_registry())
    worker = Worker(settings(), KafkaSettings(), options, sink=sink)
    agent = worker.app.agents["fusewatch-process"]

    async def feed() -> None:
        async with agent.test_context() as tested:
            for partition in (0, 1):
                for event in plant.events():
                    await tested.put(encode(event), key=event.asset_id.encode(), timestamp=event.ts / 1e9,
                                     partition=partition)
            first, second = worker.owned[0], worker.owned[1]
            assert first.unacked and second.unacked
            await worker.on_timer()  # the messages were just processed: nothing is due
            assert worker.stats["checkpoints"] == 0 and first.unacked and second.unacked
            first.unacked_since -= options.checkpoint_interval_s  # as if both oldest were 5 s old, the second's
            second.unacked_since -= options.checkpoint_interval_s + 1  # older
            await worker.on_timer()  # one partition per tick: the longest waiting
            assert second.saving is not None and first.saving is None
            await second.saving
            assert worker.stats["checkpoints"] == 1 and not second.unacked and first.unacked
            await worker.on_timer()
            assert first.saving is not None
            await first.saving
            assert worker.stats["checkpoints"] == 2 and not first.unacked

    asyncio.run(feed())
    assert {path.name for path in (tmp_path / "checkpoints").glob("*.ckpt")} == {"p0.ckpt", "p1.ckpt"}


def test_a_restored_state_is_frozen_out_of_full_collections_until_a_revoke(tmp_path: Path) -> None:
    plant = PlantSimulator(SimulatorConfig(assets=1, days=0.01, seed=1))
    options = WorkerOptions(app_id="fwtest-freeze", workdir=tmp_path, checkpoint_every=10,
                            registry=plant.asset_registry())
    first = Worker(settings(), KafkaSettings(), options, sink=ListSink())

    async def feed() -> None:
        async with first.app.agents["fusewatch-process"].test_context() as tested:
            for event in plant.events():
                await tested.put(encode(event), key=event.asset_id.encode(), timestamp=event.ts / 1e9)

    asyncio.run(feed())
    assert (tmp_path / "checkpoints" / "p0.ckpt").exists()

    second = Worker(settings(), KafkaSettings(), options, sink=ListSink())
    assigned = {TP(topic, 0) for topic in second.topics.inputs}
    try:
        asyncio.run(second._on_assigned(None, assigned))
        restored = second.owned[0].processor
        assert restored.clock_ns > 0  # the checkpoint's state, not a fresh one
        pipeline = restored.processor.pipeline
        assert gc.get_freeze_count() > 0
        assert all(obj is not pipeline for obj in gc.get_objects())  # frozen: outside every generation
        asyncio.run(second._on_revoked(None, assigned))
        assert gc.get_freeze_count() == 0 and not second.owned
    finally:
        gc.unfreeze()
