"""Features computed at the edge, through the real broker and a real `fusewatch worker`: the worker scores the
feature sets (wire kind 4) from the vibration topic exactly as the embedded runner scores the waveforms."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connectors.ingest.edge import EdgeFeatures
from connectors.kafka.consumer import read_topics
from connectors.kafka.producer import EventProducer
from connectors.kafka.simulate import default_start_ns
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.codec import encode
from fusewatch.core.events import VibrationChunk
from fusewatch.core.kafka_settings import KafkaSettings
from tests.integration.workers import (
    WorkerProcess,
    assert_same_scores,
    embedded_scores,
    scores_in_topic,
    wait_until,
    window_key,
)

pytestmark = pytest.mark.integration


def test_the_worker_scores_feature_sets_from_kafka_like_waveforms(kafka: KafkaSettings, tmp_path: Path) -> None:
    days = 0.04  # an hour of one asset: 57 windows
    plant = PlantSimulator(SimulatorConfig(assets=1, days=days, seed=5, start_ns=default_start_ns(time.time_ns(),
                                                                                                  days, None)))
    edge = EdgeFeatures(plant.asset_registry().bearings)
    vibration_bytes = []
    with EventProducer(kafka) as producer:
        for event in plant.events():
            if isinstance(event, VibrationChunk):
                event = edge.convert(event)
                vibration_bytes.append(len(encode(event)))
            producer.send(event)
    registry = tmp_path / "assets.json"
    plant.asset_registry().save(registry)
    expected = embedded_scores(plant)  # from the waveforms
    assert len(vibration_bytes) >= len(expected) and max(vibration_bytes) < 600  # not 102 KB waveforms
    worker = WorkerProcess(kafka, tmp_path, kafka.topic_prefix + "edge", registry, "worker")
    try:
        wait_until(lambda: len({window_key(s) for s in scores_in_topic(kafka)}) >= len(expected) - 2, 120,
                   "the windows scored", worker)
        wait_until(worker.drained, 60, "every message processed", worker)
    finally:
        assert worker.stop() == 0, worker.tail()
    scores = scores_in_topic(kafka)
    assert_same_scores(expected, scores)
    assert all(score["present"]["vibration"] and "env_bpfo" in score["features"] for score in scores)
    assert not list(read_topics(kafka, [kafka.topics().dead_letter]))
