"""The MQTT bridge against the real Mosquitto of the local services and the real Kafka broker.

Each test has its own topic prefix on both sides (MQTT topics under a uuid, the ``kafka`` fixture's Kafka topics)
and its own MQTT client ids. The outage test runs a Mosquitto of its own on another port, so the shared one
is never stopped.
"""

from __future__ import annotations

import base64
import getpass
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from PIL import Image

from connectors.ingest.gateway import KafkaGateway
from connectors.ingest.mqtt import MqttBridge, MqttOptions
from connectors.ingest.sparkplug.schema import DataType, Payload
from connectors.kafka.consumer import Record, read_topics
from fusewatch.core.codec import decode
from fusewatch.core.events import CameraFrame, MaintenanceLog, VibrationChunk
from fusewatch.core.kafka_settings import KafkaSettings

pytestmark = pytest.mark.integration

MQTT_PORT = int(os.environ.get("FUSEWATCH_MQTT_PORT", "1883"))
ROOT = Path(__file__).resolve().parents[2]
T0 = 1_796_083_200_000_000_000  # 2026-12-01T00:00:00Z
MS = 1_000_000
Message = tuple[str, bytes, dict[str, str]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Publisher:
    """A plain paho MQTT v5 publisher (QoS 1, each publish waited for in batches)."""

    def __init__(self, port: int = MQTT_PORT) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fwtest-pub-{uuid.uuid4().hex[:8]}",
                                  protocol=paho.MQTTv5)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        try:
            self.client.connect("127.0.0.1", port)
        except OSError as exc:
            pytest.fail(f"Mosquitto on 127.0.0.1:{port} is not available ({exc}); start it with `make services-up`")
        self.client.loop_start()

    def publish(self, messages: list[Message]) -> None:
        infos = []
        for topic, payload, user in messages:
            properties = None
            if user:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.UserProperty = list(user.items())
            infos.append(self.client.publish(topic, payload, qos=1, properties=properties))
        for info in infos:
            info.wait_for_publish(timeout=30)
            assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def prefix() -> str:
    return f"fwtest-{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def publisher() -> Iterator[Publisher]:
    pub = Publisher()
    yield pub
    pub.close()


def vibration(ts: int, samples: np.ndarray, b64: bool = True) -> bytes:
    body: dict[str, Any] = {"ts": ts, "sample_rate_hz": 25600.0}
    if b64:
        body["samples_b64"] = base64.b64encode(samples.astype("<f4").tobytes()).decode()
    else:
        body["samples"] = samples.tolist()
    return json.dumps(body).encode()


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


class InProcessBridge:
    """The bridge in a thread of the test, stopped (flushed, session kept) at the end."""

    def __init__(self, kafka: KafkaSettings, options: MqttOptions) -> None:
        self.gateway = KafkaGateway(kafka, "test-mqtt")
        self.bridge = MqttBridge(self.gateway, options)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.bridge.run, args=(self.stop,), daemon=True)
        self.thread.start()
        assert self.bridge.connected.wait(15), "the bridge did not connect and subscribe within 15 s"

    def wait_for(self, handled: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stats = self.gateway.stats()
            if stats["sent"] + stats["dead_letters"] >= handled and stats["pending"] == 0:
                return
            time.sleep(0.05)
        pytest.fail(f"the bridge handled {self.gateway.stats()} of {handled} messages in {timeout_s} s")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.gateway.close()


def records(kafka: KafkaSettings, *topics: str) -> list[Record]:
    return list(read_topics(kafka, list(topics)))


def test_every_payload_kind_arrives_as_the_same_event(kafka: KafkaSettings, prefix: str, publisher: Publisher) -> None:
    rng = np.random.default_rng(7)
    chunks = {f"pump-{i}": rng.standard_normal(256).astype(np.float32) for i in range(3)}
    images = {ts: jpeg(seed) for seed, ts in enumerate((T0 + 100 * MS, T0 + 200 * MS))}
    image_list = list(images.items())
    messages = [
        (f"{prefix}/pump-0/vibration", vibration(T0, chunks["pump-0"]), {}),
        (f"{prefix}/pump-1/vibration", vibration(T0 + 1 * MS, chunks["pump-1"], b64=False), {}),
        (f"{prefix}/pump-2/vibration", vibration(T0 + 2 * MS, chunks["pump-2"]), {}),
        (f"{prefix}/cam-pump/frame", image_list[0][1], {"ts": str(image_list[0][0])}),
        (f"{prefix}/cam-pump/frame", json.dumps({"ts": image_list[1][0], "camera_id": "cam-9", "image_b64":
                                                  base64.b64encode(image_list[1][1]).decode()}).encode(), {}),
        (f"{prefix}/pump-0/log", json.dumps({"ts": "2026-12-01T00:00:01Z", "text": "bearing greased",
                                              "author": "ops"}).encode(), {}),
    ]
    options = MqttOptions(url=f"mqtt://127.0.0.1:{MQTT_PORT}", client_id=f"{prefix}-bridge",
                          template=f"{prefix}/{{asset_id}}/{{modality}}")
    bridge = InProcessBridge(kafka, options)
    try:
        publisher.publish(messages)
        bridge.wait_for(len(messages))
    finally:
        bridge.close()
    topics = kafka.topics()
    got = records(kafka, *topics.inputs)
    assert len(got) == len(messages)
    events = [(record, decode(record.value)) for record in got]
    vib = {event.asset_id: (record, event) for record, event in events if isinstance(event, VibrationChunk)}
    assert set(vib) == set(chunks)
    for index, (asset_id, samples) in enumerate(sorted(chunks.items())):
        record, event = vib[asset_id]
        assert record.topic == topics.vibration and record.key == asset_id.encode()
        assert event.ts == T0 + index * MS and record.timestamp_ms == event.ts // MS
        assert event.samples.astype("<f4").tobytes() == samples.tobytes()
        assert event.sample_rate_hz == 25600.0
    frames = sorted((e for _, e in events if isinstance(e, CameraFrame)), key=lambda e: e.ts)
    assert [(f.ts, f.data, f.asset_id) for f in frames] == [(ts, data, "cam-pump") for ts, data in image_list]
    assert [f.camera_id for f in frames] == ["camera", "cam-9"]
    assert (frames[0].width, frames[0].height, frames[0].encoding) == (32, 24, "jpeg")
    logs = [(r, e) for r, e in events if isinstance(e, MaintenanceLog)]
    assert len(logs) == 1 and logs[0][1].text == "bearing greased" and logs[0][1].ts == T0 + 1000 * MS
    assert logs[0][0].key == b"pump-0" and logs[0][0].topic == topics.maintenance_logs


def test_malformed_payloads_become_dead_letters_with_reasons(kafka: KafkaSettings, prefix: str,
                                                             publisher: Publisher) -> None:
    bad: list[tuple[str, bytes, dict[str, str], str]] = [
        (f"{prefix}/pump-0/vibration", b"{not json", {}, "<payload>: not JSON"),
        (f"{prefix}/pump-0/vibration", json.dumps({"sample_rate_hz": 1.0, "samples": [1.0]}).encode(), {},
         "ts: missing"),
        (f"{prefix}/pump-0/temperature", b"{}", {}, "topic: modality 'temperature'"),
        (f"{prefix}/pump-0/frame", jpeg(1), {}, "ts: a raw image needs"),
        (f"{prefix}/pump-0/log", json.dumps({"ts": T0, "text": " "}).encode(), {}, "text: is blank"),
    ]
    good: Message = (f"{prefix}/pump-0/vibration", vibration(T0, np.ones(8, np.float32)), {})
    options = MqttOptions(url=f"mqtt://127.0.0.1:{MQTT_PORT}", client_id=f"{prefix}-bridge",
                          template=f"{prefix}/{{asset_id}}/{{modality}}")
    bridge = InProcessBridge(kafka, options)
    try:
        publisher.publish([(t, p, u) for t, p, u, _ in bad] + [good])
        bridge.wait_for(len(bad) + 1)
    finally:
        bridge.close()
    letters = [json.loads(r.value) for r in records(kafka, kafka.topics().dead_letter)]
    assert len(letters) == len(bad)
    by_reason = sorted(letters, key=lambda letter: letter["error"])
    for (topic, payload, _, reason), letter in zip(sorted(bad, key=lambda b: b[3]), by_reason, strict=True):
        assert letter["error"].startswith(reason), letter["error"]
        assert letter["source_topic"] == f"mqtt://127.0.0.1:{MQTT_PORT}/{topic}"
        expected_raw = b"" if topic.endswith("/frame") else payload
        assert base64.b64decode(letter["raw_base64"]) == expected_raw
    assert len(records(kafka, kafka.topics().vibration)) == 1  # the good one after the bad ones


def test_sparkplug_dbirth_and_ddata_become_the_same_chunk(kafka: KafkaSettings, prefix: str,
                                                           publisher: Publisher) -> None:
    samples = np.random.default_rng(3).standard_normal(4096).astype("<f4")
    birth = Payload(timestamp=T0 // MS, seq=0)
    birth.metrics.add(name="sample_rate_hz", alias=1, datatype=DataType.Double, double_value=25600.0)
    birth.metrics.add(name="vib/de", alias=2, datatype=DataType.FloatArray, bytes_value=b"")
    data = Payload(timestamp=T0 // MS + 5, seq=1)
    data.metrics.add(alias=2, timestamp=T0 // MS + 3, bytes_value=samples.tobytes())  # alias only, as edge nodes do
    base = f"spBv1.0/{prefix}"
    options = MqttOptions(url=f"mqtt://127.0.0.1:{MQTT_PORT}", client_id=f"{prefix}-bridge",
                          template=f"{prefix}/{{asset_id}}/{{modality}}", sparkplug_groups=(prefix,))
    bridge = InProcessBridge(kafka, options)
    try:
        publisher.publish([(f"{base}/DBIRTH/edge-1/pump-01", birth.SerializeToString(), {}),
                           (f"{base}/DDATA/edge-1/pump-01", data.SerializeToString(), {}),
                           (f"{base}/DDATA/edge-1/fan-02", data.SerializeToString(), {})])  # no DBIRTH: a dead letter
        bridge.wait_for(2)
    finally:
        bridge.close()
    [record] = records(kafka, kafka.topics().vibration)
    chunk = decode(record.value)
    assert isinstance(chunk, VibrationChunk) and record.key == b"pump-01"
    assert (chunk.asset_id, chunk.sensor_id, chunk.ts, chunk.sample_rate_hz) == ("pump-01", "vib/de", T0 + 3 * MS,
                                                                                 25600.0)
    assert chunk.samples.astype("<f4").tobytes() == samples.tobytes()
    [letter] = [json.loads(r.value) for r in records(kafka, kafka.topics().dead_letter)]
    assert letter["error"] == "metrics[0]: alias 2 is not in a DBIRTH of edge-1/fan-02 (none seen since the bridge" \
        " started)"
    assert letter["source_topic"] == f"mqtt://127.0.0.1:{MQTT_PORT}/{base}/DDATA/edge-1/fan-02"
    assert base64.b64decode(letter["raw_base64"]) == data.SerializeToString()


def bridge_process(prefix: str, kafka: KafkaSettings, health_port: int, mqtt_port: int = MQTT_PORT,
                   ) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": kafka.topic_prefix}
    return subprocess.Popen(
        [sys.executable, "-m", "fusewatch.cli", "ingest", "mqtt", "--mqtt", f"mqtt://127.0.0.1:{mqtt_port}",
         "--kafka", kafka.bootstrap_servers, "--client-id", f"{prefix}-bridge", "--topic-template",
         f"{prefix}/{{asset_id}}/{{modality}}", "--health-port", str(health_port), "--reconnect-max", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
        return body
    except OSError:
        return None


def wait_health(port: int, process: subprocess.Popen[bytes], check: Any, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        body = health(port)
        if body is not None and check(body):
            return body
        time.sleep(0.05)
    pytest.fail(f"the bridge's health did not become as expected in {timeout_s} s: {health(port)}")


@pytest.mark.slow
def test_bridge_killed_during_10000_messages_loses_none(kafka: KafkaSettings, prefix: str,
                                                        publisher: Publisher) -> None:
    total = 10_000
    samples = np.arange(16, dtype=np.float32)
    messages: list[Message] = [(f"{prefix}/pump-{i % 4}/vibration", vibration(T0 + i * MS, samples), {})
                               for i in range(total)]
    port = free_port()
    first = bridge_process(prefix, kafka, port)
    try:
        wait_health(port, first, lambda body: body["source_connected"])
        sender = threading.Thread(target=publisher.publish, args=(messages,))
        sender.start()
        killed_at = wait_health(port, first, lambda body: body.get("sent", 0) >= 2_000)["sent"]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        sender.join(60)
        assert not sender.is_alive()
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=10)
    assert killed_at < total
    port = free_port()
    second = bridge_process(prefix, kafka, port)
    try:
        distinct: set[tuple[bytes | None, int]] = set()
        deadline = time.monotonic() + 60
        while len(distinct) < total and time.monotonic() < deadline:
            wait_health(port, second, lambda body: body["source_connected"] and body["pending"] == 0)
            time.sleep(0.5)
            got = records(kafka, kafka.topics().vibration)
            distinct = {(r.key, decode(r.value).ts) for r in got}
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=30)
        assert second.returncode == 0, out.decode()
    finally:
        if second.poll() is None:
            second.kill()
    print(f"killed after {killed_at} sent; {len(got)} records for {total} messages")
    assert len(distinct) == total, f"{total - len(distinct)} of {total} missing ({len(got)} records)"
    assert distinct == {(f"pump-{i % 4}".encode(), T0 + i * MS) for i in range(total)}


MOSQUITTO_CONF = """user {user}
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {data}/
autosave_interval 5
max_queued_messages 100000
log_dest file {data}/mosquitto.log
"""


class OwnMosquitto:
    """A Mosquitto of this test's own on a free port, with persistence in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(MOSQUITTO_CONF.format(user=getpass.getuser(), port=self.port, data=directory))
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"Mosquitto did not listen on {self.port} within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def small_chunks(topic: str, count: int = 5) -> list[Message]:
    return [(topic, vibration(T0 + i * MS, np.ones(4, np.float32)), {}) for i in range(count)]


@pytest.mark.slow
def test_broker_down_30_s_then_the_bridge_reconnects_and_resumes(kafka: KafkaSettings, prefix: str,
                                                                 tmp_path: Path) -> None:
    broker = OwnMosquitto(tmp_path)
    broker.start()
    bridge: InProcessBridge | None = None
    try:
        options = MqttOptions(url=f"mqtt://127.0.0.1:{broker.port}", client_id=f"{prefix}-bridge",
                              template=f"{prefix}/{{asset_id}}/{{modality}}", backoff_s=(1.0, 2.0))
        bridge = InProcessBridge(kafka, options)
        before = small_chunks(f"{prefix}/pump-0/vibration")
        pub = Publisher(broker.port)
        pub.publish(before)
        pub.close()
        bridge.wait_for(5)
        broker.stop()
        time.sleep(1)
        assert not bridge.bridge.health.source_connected
        time.sleep(29)
        broker.start()
        assert bridge.bridge.connected.wait(10), "no reconnection within 10 s of the broker's return"
        after = small_chunks(f"{prefix}/pump-1/vibration")
        pub = Publisher(broker.port)
        pub.publish(after)
        pub.close()
        bridge.wait_for(10)
        assert bridge.bridge.health.counters["reconnects"] >= 1
    finally:
        if bridge is not None:
            bridge.close()
        broker.stop()
    got = {(r.key, decode(r.value).ts) for r in records(kafka, kafka.topics().vibration)}
    assert got == {(f"pump-{k}".encode(), T0 + i * MS) for k in (0, 1) for i in range(5)}
