"""A partition's state survives a checkpoint and restore exactly; messages are merged in event-time order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.codec import encode
from fusewatch.core.errors import IncompatibleStateError
from fusewatch.core.topics import Topics
from streams.checkpoint import CheckpointStore
from streams.runners.partition import OutgoingMessage, PartitionProcessor
from streams.settings import StreamSettings

TOPICS = Topics()
Message = tuple[str, int, int, bytes, bytes]  # topic, offset, timestamp ms, value, key


def plant_messages(assets: int = 2, days: float = 0.1) -> tuple[PlantSimulator, list[Message]]:
    plant = PlantSimulator(SimulatorConfig(assets=assets, days=days, seed=3))
    offsets = dict.fromkeys(TOPICS.inputs, 0)
    messages = []
    for event in plant.events():
        topic = TOPICS.for_event(event)
        messages.append((topic, offsets[topic], event.ts // 1_000_000, encode(event), event.asset_id.encode()))
        offsets[topic] += 1
    return plant, messages


def new_processor(plant: PlantSimulator) -> PartitionProcessor:
    return PartitionProcessor(0, StreamSettings(), TOPICS, "live", plant.asset_registry(), "digest")


def run(processor: PartitionProcessor, messages: list[Message]) -> list[OutgoingMessage]:
    out: list[OutgoingMessage] = []
    for topic, offset, ts_ms, value, key in messages:
        produced = processor.handle(topic, offset, ts_ms, value, key)
        out += produced or []
    return out


def test_a_restored_checkpoint_continues_exactly_and_skips_what_it_covers(tmp_path: Path) -> None:
    plant, messages = plant_messages()
    uninterrupted = run(new_processor(plant), messages)
    assert sum(m.topic == TOPICS.scores for m in uninterrupted) > 200

    half = len(messages) // 2
    first = new_processor(plant)
    before = run(first, messages[:half])
    store = CheckpointStore(tmp_path)
    store.save(first.checkpoint())

    second = new_processor(plant)
    checkpoint = store.load(0)
    assert checkpoint is not None
    second.restore(checkpoint)
    assert all(second.handle(*message) is None for message in messages[:half])  # already in the state
    after = run(second, messages)  # the replay from older committed offsets: the covered part is skipped
    assert before + after == uninterrupted


def test_unknown_assets_become_dead_letters_with_the_source_coordinates() -> None:
    plant, messages = plant_messages(assets=1, days=0.01)
    processor = new_processor(plant)
    topic, offset, ts_ms, value, _ = messages[0]
    out = processor.handle(topic, offset, ts_ms, value, b"pump-99")
    assert out is not None and [m.topic for m in out] == [TOPICS.dead_letter]
    headers = dict(out[0].headers)
    assert headers["source-topic"] == topic.encode() and headers["source-offset"] == str(offset).encode()
    assert headers["reason"].startswith(b"unknown asset: key 'pump-99'")
    assert json.loads(out[0].value)["partition"] == 0


def test_a_damaged_checkpoint_is_reported_and_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CheckpointStore(tmp_path)
    store.path(2).write_bytes(b"fusewatch-checkpoint\n{\"format\": 1, \"partition\": 2")
    assert store.load(2) is None
    assert "unreadable" in caplog.text


def test_a_stale_writer_cannot_move_a_checkpoint_backwards(tmp_path: Path) -> None:
    plant, messages = plant_messages(assets=1, days=0.02)
    ahead, behind = new_processor(plant), new_processor(plant)
    run(ahead, messages)
    run(behind, messages[: len(messages) // 2])
    store = CheckpointStore(tmp_path)
    assert store.save(ahead.checkpoint())
    assert not store.save(behind.checkpoint())  # e.g. a worker that lost the partition in a rebalance
    loaded = store.load(0)
    assert loaded is not None and loaded.offsets == ahead.offsets


def test_scores_carry_the_model_version_and_another_state_version_is_refused() -> None:
    plant, messages = plant_messages(assets=1, days=0.05)
    processor = new_processor(plant)
    scores = [json.loads(m.value) for m in run(processor, messages) if m.topic == TOPICS.scores]
    assert scores and {s["model_version"] for s in scores} == {processor.processor.pipeline.model_version}
    assert processor.processor.pipeline.model_version.endswith("+fisher.s4")
    snapshot = processor.processor.snapshot()
    other = new_processor(plant)
    other.processor.pipeline.state_version = 1  # a checkpoint written by an older layout
    old = other.processor.snapshot()
    with pytest.raises(IncompatibleStateError, match="model state version 1, this version reads 4"):
        processor.processor.restore(old)
    processor.processor.restore(snapshot)  # the current layout is accepted
