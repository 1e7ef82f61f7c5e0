"""`fusewatch ingest mqtt --edge-features`: the bridge publishes each snapshot's feature set, not its waveform.

The bridge runs as a process with a plant file against the real Mosquitto and Kafka; the feature sets on the
vibration topic must be those the converter computes from the same snapshots with the plant's bearing (so the
workers score them as the waveforms, tests/unit/test_edge_features.py), at a fraction of the bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from connectors.ingest.edge import EdgeFeatures
from connectors.kafka.consumer import read_topics
from fusewatch.core.assets import BearingKinematics
from fusewatch.core.codec import decode
from fusewatch.core.events import VibrationFeatureSet
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import NS_PER_MIN, parse_time
from tests.integration.test_ingest_mqtt import MQTT_PORT, Publisher, free_port, vibration, wait_health

pytestmark = pytest.mark.integration

T0 = parse_time("2026-12-06T06:00:00Z")
BEARING = BearingKinematics(29.5, 105.2, 160.1, 68.3, 11.7)


def test_the_mqtt_bridge_sends_feature_sets_computed_with_the_plants_bearing(kafka: KafkaSettings,
                                                                            tmp_path: Path) -> None:
    prefix = f"fwtest-edge-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    plant = tmp_path / "plant.toml"
    plant.write_text(f'[mqtt]\nurl = "mqtt://127.0.0.1:{MQTT_PORT}"\ntopic_template = "{prefix}/{{asset_id}}/'
                     f'{{modality}}"\nclient_id = "{prefix}-bridge"\n\n[[assets]]\nid = "pump-01"\nkind = "pump"\n'
                     f"bearing = {{ shaft_hz = 29.5, bpfo_hz = 105.2, bpfi_hz = 160.1, bsf_hz = 68.3,"
                     f" ftf_hz = 11.7 }}\nvibration = {{ source = \"mqtt\", sensor_id = \"de\" }}\n")
    port = free_port()
    env = {**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": kafka.topic_prefix}
    log = tmp_path / "bridge.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "fusewatch.cli", "--log-level", "INFO", "ingest", "mqtt",
                                    "--kafka", kafka.bootstrap_servers, "--plant", str(plant), "--edge-features",
                                    "--health-port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    publisher = Publisher()
    try:
        wait_health(port, process, lambda body: body.get("source_connected"))
        rng = np.random.default_rng(11)
        snapshots = [(T0 + k * NS_PER_MIN, rng.standard_normal(25_600).astype(np.float32)) for k in range(5)]
        payloads = [vibration(ts, samples) for ts, samples in snapshots]
        publisher.publish([(f"{prefix}/pump-01/vibration", payload, {}) for payload in payloads])
        wait_health(port, process, lambda body: body.get("sent", 0) >= len(snapshots))
    finally:
        publisher.close()
        process.terminate()
        process.wait(30)
    records = list(read_topics(kafka, [kafka.topics().vibration]))
    assert len(records) == len(snapshots), log.read_text()[-3000:]
    sets = [decode(record.value) for record in records]
    assert all(isinstance(s, VibrationFeatureSet) for s in sets)
    from connectors.ingest.payloads import StreamDefaults, event_from_payload

    edge = EdgeFeatures(lambda asset_id: BEARING)
    expected = [edge.convert(event_from_payload("vibration", "pump-01", payload, {},  # type: ignore[arg-type]
                                                StreamDefaults(sensor_id="de"))) for payload in payloads]
    assert sorted((s.ts, s.sensor_id, s.features) for s in sets) == [  # type: ignore[union-attr]
        (e.ts, e.sensor_id, e.features) for e in expected]
    assert "env_bpfo" in expected[0].features
    wire = sum(len(record.value) for record in records)
    assert wire * 100 < sum(len(payload) for payload in payloads)  # 100 KB waveforms → well under 1 KB each


def test_a_chunk_the_edge_cannot_convert_is_a_dead_letter_with_its_waveform(kafka: KafkaSettings) -> None:
    from connectors.ingest.gateway import KafkaGateway
    from fusewatch.core.codec import encode
    from fusewatch.core.errors import InvalidEventError
    from fusewatch.core.events import DeadLetter, VibrationChunk, make_event

    def refuse(chunk: VibrationChunk) -> VibrationFeatureSet:
        raise InvalidEventError("features", "kurtosis is not finite")

    chunk = make_event(VibrationChunk, asset_id="pump-01", sensor_id="de", ts=T0, sample_rate_hz=25600.0, unit="g",
                       samples=np.ones(64, dtype=np.float32))
    gateway = KafkaGateway(kafka, "test-edge", transform=refuse)
    outcomes: list[BaseException | None] = []
    try:
        gateway.send(chunk, outcomes.append, "mqtt://127.0.0.1:1883/plant/pump-01/vibration")
        gateway.flush()
    finally:
        gateway.close()
    assert outcomes == [None] and gateway.stats()["dead_letters"] == 1
    [record] = list(read_topics(kafka, [kafka.topics().dead_letter]))
    letter = DeadLetter.model_validate_json(record.value)
    assert letter.source_topic == "mqtt://127.0.0.1:1883/plant/pump-01/vibration"
    assert letter.error == "edge features: features: kurtosis is not finite"
    import base64

    assert base64.b64decode(letter.raw_base64) == encode(chunk) and letter.ts == T0
    assert list(read_topics(kafka, [kafka.topics().vibration])) == []
