"""fusewatch's wire format and partitioning, checked with kcat, a client written independently of ours."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from connectors.kafka.consumer import read_topics
from connectors.kafka.producer import EventProducer
from fusewatch.core.codec import InputEvent, decode, encode_png
from fusewatch.core.events import CameraFrame, MaintenanceLog, VibrationChunk, make_event
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import parse_time
from tests.integration import kcat as kc

pytestmark = pytest.mark.integration


def hand_built_vibration() -> bytes:
    """A vibration message assembled byte by byte from docs/wire-format.md, without fusewatch's encoder."""
    header = (
        b'{"asset_id":"pump-7","sensor_id":"de","ts":"2026-01-05T00:00:00.25Z",'
        b'"sample_rate_hz":8.0,"unit":"g","n_samples":4}'
    )
    samples = struct.pack("<4f", 0.5, -1.0, 2.25, 0.0)
    return b"FW" + bytes([1, 1]) + struct.pack("<I", len(header)) + header + samples


def test_a_message_published_by_kcat_is_decoded_and_partitioned_like_ours(
    kafka: KafkaSettings, kcat: str, tmp_path: Path
) -> None:
    topic = kafka.topics().vibration
    message = tmp_path / "message.bin"
    message.write_bytes(hand_built_vibration())
    kc.produce_file(kcat, kafka.bootstrap_servers, topic, "pump-7", message)
    ours = make_event(VibrationChunk, asset_id="pump-7", sensor_id="de", ts="2026-01-05T00:01:00Z",
                      sample_rate_hz=8.0, unit="g", samples=np.zeros(4, dtype=np.float32))
    with EventProducer(kafka) as producer:
        producer.send(ours)

    records = list(read_topics(kafka, [topic]))
    assert len(records) == 2
    by_kcat, by_us = sorted(records, key=lambda record: decode(record.value).ts)
    assert by_kcat.key == by_us.key == b"pump-7"
    assert by_kcat.partition == by_us.partition  # librdkafka's murmur2 == kafka-python's == Java's
    event = decode(by_kcat.value)
    assert isinstance(event, VibrationChunk)
    assert (event.asset_id, event.sensor_id, event.unit, event.sample_rate_hz) == ("pump-7", "de", "g", 8.0)
    assert event.ts == parse_time("2026-01-05T00:00:00.25Z")
    assert event.samples.tolist() == [0.5, -1.0, 2.25, 0.0]


def test_kcat_reads_what_our_producer_wrote(kafka: KafkaSettings, kcat: str) -> None:
    rng = np.random.default_rng(7)
    events: list[InputEvent] = [
        make_event(VibrationChunk, asset_id=f"motor-{index}", sensor_id="de", ts=f"2026-01-05T00:0{index}:00Z",
                   sample_rate_hz=25_600.0, unit="g", samples=rng.normal(size=256).astype(np.float32))
        for index in range(4)
    ]
    events += [
        make_event(CameraFrame, asset_id="motor-1", camera_id="cam", ts="2026-01-05T00:00:30Z", width=32,
                   height=16, encoding="png", data=encode_png(rng.integers(0, 255, (16, 32), dtype=np.uint8))),
        make_event(MaintenanceLog, asset_id="motor-2", ts="2026-01-05T00:00:40Z", author="tech-3",
                   text="Brg noisy on DE side, greased", kind="inspection"),
    ]
    with EventProducer(kafka) as producer:
        for event in events:
            producer.send(event)

    topics = kafka.topics()
    seen = {topic: kc.consume(kcat, kafka.bootstrap_servers, topic) for topic in topics.inputs}
    assert [len(seen[topic]) for topic in topics.inputs] == [4, 1, 1]
    for event in events:
        (record,) = [r for r in seen[topics.for_event(event)] if decode(r.value).ts == event.ts]
        assert record.key == event.asset_id.encode()
        assert record.timestamp_ms == event.ts // 1_000_000
        back = decode(record.value)
        assert back.model_dump(exclude={"samples"}) == event.model_dump(exclude={"samples"})
        if isinstance(event, VibrationChunk):
            assert isinstance(back, VibrationChunk)
            np.testing.assert_array_equal(back.samples, event.samples)
    header = json.loads(seen[topics.maintenance_logs][0].value[8:].decode())
    assert header["text"] == "Brg noisy on DE side, greased"
