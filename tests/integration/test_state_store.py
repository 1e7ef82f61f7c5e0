"""Worker checkpoints in the compacted state topic (connectors/kafka/state_store.py) on the real broker."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from connectors.kafka.admin import admin_client, describe_topics
from connectors.kafka.state_store import KafkaCheckpointStore
from fusewatch.core.kafka_settings import KafkaSettings
from streams.checkpoint import Checkpoint

pytestmark = pytest.mark.integration


def state(size: int, seed: int) -> bytes:
    """Incompressible bytes, so the checkpoint really spans several chunks."""
    return bytes((seed + i * 7) % 251 for i in range(64)) + os.urandom(size)


def checkpoint(partition: int, offset: int, body: bytes) -> Checkpoint:
    return Checkpoint(partition, {"vibration": offset, "frames": offset // 2}, "digest", body)


def live_keys(settings: KafkaSettings, partition: int) -> set[bytes]:
    store = KafkaCheckpointStore(settings, "app", writer="reader")
    headers, chunks, _ = store._read([partition])[partition]
    return {*headers, *chunks}


@pytest.fixture()
def small(kafka: KafkaSettings) -> KafkaSettings:
    """The test's topics, with messages capped at 200 kB: a 700 kB state takes six chunks."""
    return kafka.model_copy(update={"max_message_bytes": 200 * 1024})


def test_the_topic_is_compacted_and_co_partitioned(kafka: KafkaSettings) -> None:
    state_topic = [s for s in describe_topics(kafka) if s.name == kafka.topics().worker_state]
    assert state_topic and state_topic[0].partitions == kafka.partitions and state_topic[0].status == "ok"

    with admin_client(kafka) as admin:
        answer = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, kafka.topics().worker_state)])
    configs = answer["topic"][kafka.topics().worker_state]
    assert configs["cleanup.policy"]["value"] == "compact"
    assert configs["segment.ms"]["value"] == str(10 * 60 * 1000)


def test_a_checkpoint_spans_chunks_and_comes_back_exactly(small: KafkaSettings) -> None:
    body = state(700 * 1024, 1)
    writer = KafkaCheckpointStore(small, "app", writer="w1")
    try:
        assert writer.load(2) is None  # nothing yet
        assert writer.save(checkpoint(2, 100, body))
    finally:
        writer.close()
    restored = KafkaCheckpointStore(small, "app", writer="w2").load(2)
    assert restored is not None
    assert restored.state == body and restored.offsets == {"vibration": 100, "frames": 50}
    assert restored.config_digest == "digest"
    keys = live_keys(small, 2)
    assert len([k for k in keys if k.count(b"/") == 4]) >= 4  # chunks
    assert KafkaCheckpointStore(small, "app", writer="w3").load(3) is None  # another partition is untouched
    assert KafkaCheckpointStore(small, "other-app", writer="w4").load(2) is None  # another group's state is apart


def test_several_partitions_are_read_in_one_pass_and_each_writes_above_what_it_saw(small: KafkaSettings) -> None:
    """What a worker assigned several partitions does: one reader for all of them."""
    body = state(300 * 1024, 7)
    first = KafkaCheckpointStore(small, "many", writer="w1")
    try:
        assert first.load_many([0, 1, 4]) == {0: None, 1: None, 4: None}
        assert first.save(checkpoint(0, 10, body)) and first.save(checkpoint(4, 40, b"four"))
    finally:
        first.close()
    second = KafkaCheckpointStore(small, "many", writer="w2")
    try:
        loaded = second.load_many([4, 0, 1])
        assert sorted(loaded) == [0, 1, 4] and loaded[1] is None
        assert loaded[0] is not None and loaded[0].state == body and loaded[0].offsets["vibration"] == 10
        assert loaded[4] is not None and loaded[4].state == b"four"
        assert second.save(checkpoint(4, 41, b"four again"))
    finally:
        second.close()
    assert KafkaCheckpointStore(small, "many", writer="w3").load(4).state == b"four again"  # type: ignore[union-attr]


def test_superseded_checkpoints_are_deleted(small: KafkaSettings) -> None:
    writer = KafkaCheckpointStore(small, "app", writer="w1")
    try:
        writer.load(0)
        for offset in (10, 20, 30, 40):
            writer.save(checkpoint(0, offset, state(500 * 1024, offset)))
        last = state(100, 99)
        writer.save(checkpoint(0, 50, last))
    finally:
        writer.close()
    # one header and the one chunk of the newest checkpoint are all that is left after the tombstones
    assert live_keys(small, 0) == {b"app/p0/g1", b"app/p0/g1/s4/c0"}
    restored = KafkaCheckpointStore(small, "app", writer="w2").load(0)
    assert restored is not None and restored.state == last and restored.offsets["vibration"] == 50


def test_a_stale_writer_never_wins(small: KafkaSettings) -> None:
    old_owner = KafkaCheckpointStore(small, "app", writer="old")
    new_owner = KafkaCheckpointStore(small, "app", writer="new")
    try:
        old_owner.load(1)
        old_owner.save(checkpoint(1, 100, b"old state at 100"))
        taken_over = new_owner.load(1)  # the partition moves: the new owner writes one generation higher
        assert taken_over is not None and taken_over.state == b"old state at 100"
        new_owner.save(checkpoint(1, 150, b"new state at 150"))
        # the old owner has not noticed yet and writes once more, with offsets even further on
        old_owner.save(checkpoint(1, 180, b"old state at 180"))
    finally:
        old_owner.close()
        new_owner.close()
    restored = KafkaCheckpointStore(small, "app", writer="third").load(1)
    assert restored is not None and restored.state == b"new state at 150"


def test_a_damaged_checkpoint_is_reported_and_not_restored(small: KafkaSettings,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    writer = KafkaCheckpointStore(small, "app", writer="w1")
    try:
        writer.load(4)
        writer.save(checkpoint(4, 10, state(300 * 1024, 4)))
    finally:
        writer.close()
    # a header whose checksum does not match its chunks (a bit flipped somewhere)
    header = {"format": 1, "partition": 4, "generation": 1, "sequence": 0, "offsets": {"vibration": 10},
              "config_digest": "digest", "chunks": 2, "bytes": 1, "sha256": "0" * 64, "writer": "w1",
              "written_at": 0.0}
    producer = KafkaProducer(bootstrap_servers=small.servers())
    producer.send(small.topics().worker_state, key=b"app/p4/g1", value=json.dumps(header).encode(), partition=4).get(10)
    producer.close()
    with caplog.at_level(logging.ERROR, logger="connectors.kafka.state_store"):
        assert KafkaCheckpointStore(small, "app", writer="w2").load(4) is None
    assert "checksum mismatch" in caplog.text


def test_the_local_copy_is_used_only_when_it_matches_the_topic(small: KafkaSettings, tmp_path: Path) -> None:
    body = state(50_000, 5)
    cache = tmp_path / "cache"
    writer = KafkaCheckpointStore(small, "app", writer="w1", cache_dir=cache)
    try:
        writer.load(5)
        writer.save(checkpoint(5, 10, body))
    finally:
        writer.close()
    assert (cache / "p5.ckpt").exists()
    assert KafkaCheckpointStore(small, "app", writer="w2", cache_dir=cache).load(5).state == body  # type: ignore[union-attr]
    # another host's stale copy (a different state) is not believed: the topic's state is restored
    elsewhere = KafkaCheckpointStore(small, "app", writer="w3", cache_dir=tmp_path / "elsewhere")
    elsewhere.cache.save(checkpoint(5, 99, b"stale"))  # type: ignore[union-attr]
    assert elsewhere.load(5).state == body  # type: ignore[union-attr]
