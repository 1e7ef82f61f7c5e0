"""MQTT bridge: `fusewatch ingest mqtt` end to end into Kafka against a bare paho subscriber on the same broker.

Both readers are MQTT v5 clients of the local Mosquitto (services.sh) with a persistent session, QoS 1
subscriptions and a receive maximum of 1000. Before each timed run both sessions exist and are disconnected;
N vibration messages (JSON with ``samples_b64``: "1 s at 25.6 kHz" is 102,400 bytes of float32, 137 KB of
JSON; "64 samples" is 0.4 KB) are published once, so the broker queues a copy for each. Then each reader
connects and drains its queue: "paho" is a bare paho-mqtt 2 subscriber that acknowledges automatically and only
counts the messages and their bytes; "bridge" is the bridge (`connectors.ingest.mqtt.MqttBridge` with its
`KafkaGateway`: decode the payload, validate, encode wire format v1, produce with acks=all, acknowledge to
the broker in the callback). The time runs from the connect call to the last message received (paho) or
acknowledged by Kafka (bridge). The ratio is bridge messages/s ÷ paho messages/s of the same repetition.
"decode + Kafka" is the bridge's work without MQTT, in one thread: the same payloads decoded
(`event_from_payload`) and sent through a `KafkaGateway` until Kafka acknowledged all, the ceiling a one-process
bridge can reach on this machine (Kafka, Mosquitto and the bridge share its cores).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from benchmarks.processes import bench_kafka
from benchmarks.run import method_text, stat
from connectors.ingest.gateway import KafkaGateway
from connectors.ingest.mqtt import MqttBridge, MqttOptions
from connectors.ingest.payloads import StreamDefaults, event_from_payload
from connectors.kafka.admin import create_topics, delete_topics
from fusewatch.core.kafka_settings import KafkaSettings

GOAL = 0.8
PORT = int(os.environ.get("FUSEWATCH_MQTT_PORT", "1883"))
RECEIVE_MAXIMUM = 1000
T0 = 1_796_083_200_000_000_000


def payloads(count: int, samples: int) -> list[bytes]:
    """``count`` vibration messages of ``samples`` float32 samples each (samples_b64 JSON), one second apart."""
    rng = np.random.default_rng(0)
    block = base64.b64encode(rng.standard_normal(samples).astype("<f4").tobytes()).decode()
    return [json.dumps({"ts": T0 + index * 1_000_000_000, "sample_rate_hz": 25600.0,
                        "samples_b64": block}).encode() for index in range(count)]


def connect_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 600
    properties.ReceiveMaximum = RECEIVE_MAXIMUM
    return properties


class BareSubscriber:
    """A paho subscriber that only counts (automatic PUBACKs)."""

    def __init__(self, client_id: str, topic: str) -> None:
        self.client_id, self.topic = client_id, topic
        self.count = 0
        self.bytes = 0
        self.last = 0.0
        self.expected = 0
        self.finished = threading.Event()

    def _client(self) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5)
        client.on_message = self._on_message
        return client

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.count += 1
        self.bytes += len(message.payload)
        if self.count >= self.expected:
            self.last = time.perf_counter()
            self.finished.set()

    def subscribe(self) -> None:
        client = self._client()
        client.connect("127.0.0.1", PORT, clean_start=False, properties=connect_properties())
        client.loop_start()
        client.subscribe(self.topic, qos=1)
        time.sleep(0.3)
        client.disconnect()
        client.loop_stop()

    def drain(self, expected: int, timeout_s: float) -> tuple[float, int]:
        self.count, self.bytes, self.expected = 0, 0, expected
        self.finished.clear()
        client = self._client()
        started = time.perf_counter()
        client.connect("127.0.0.1", PORT, clean_start=False, properties=connect_properties())
        client.loop_start()
        try:
            if not self.finished.wait(timeout_s):
                raise RuntimeError(f"paho: {self.count} of {expected} messages in {timeout_s:g} s")
        finally:
            client.disconnect()
            client.loop_stop()
        return self.last - started, self.bytes


def bridge_drain(settings: KafkaSettings, options: MqttOptions, expected: int, size: int,
                 timeout_s: float) -> tuple[float, int]:
    gateway = KafkaGateway(settings, "bench-mqtt")
    try:
        bridge = MqttBridge(gateway, options)
        stop = threading.Event()
        started = time.perf_counter()
        thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
        thread.start()
        deadline = started + timeout_s
        if expected == 0 and not bridge.connected.wait(timeout_s):
            raise RuntimeError("bridge: not subscribed")
        while True:
            stats = gateway.stats()
            if stats["sent"] >= expected and stats["pending"] == 0:
                elapsed = time.perf_counter() - started
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"bridge: {stats} of {expected} messages in {timeout_s:g} s")
            time.sleep(0.002)
        stop.set()
        thread.join(60)
    finally:
        gateway.close()
    return elapsed, expected * size


def kafka_only(settings: KafkaSettings, messages: list[bytes]) -> tuple[float, int]:
    """The bridge's work without MQTT: decode every payload and send it through a gateway, until Kafka has all."""
    gateway = KafkaGateway(settings, "bench-kafka-only")
    try:
        started = time.perf_counter()
        for payload in messages:
            gateway.send(event_from_payload("vibration", "pump-01", payload, {}, StreamDefaults()), _ignore)
        gateway.flush()
        elapsed = time.perf_counter() - started
        if gateway.stats()["sent"] != len(messages):
            raise RuntimeError(f"decode + Kafka: {gateway.stats()}")
    finally:
        gateway.close()
    return elapsed, sum(len(payload) for payload in messages)


def _ignore(error: BaseException | None) -> None:
    return None


def publish(topic: str, messages: list[bytes]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fwbench-pub-{uuid.uuid4().hex[:8]}",
                         protocol=paho.MQTTv5)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", PORT)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=60)
    client.disconnect()
    client.loop_stop()


def run(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    cases = [("1 s at 25.6 kHz", 25_600, 100 if quick else 600), ("64 samples", 64, 2_000 if quick else 20_000)]
    repetitions = 1 if quick else 3
    settings = bench_kafka(topic_prefix=f"fwbench-{uuid.uuid4().hex[:8]}.")
    topics = settings.topics()
    create_topics(settings, [topics.vibration, topics.dead_letter])
    prefix = f"fwbench-{uuid.uuid4().hex[:8]}"
    rows: list[list[Any]] = []
    figures: dict[str, Any] = {}
    ratios_all: list[float] = []
    try:
        for name, samples, count in cases:
            messages = payloads(count, samples)
            size = len(messages[0])
            topic = f"{prefix}/pump-01/vibration"
            bare = BareSubscriber(f"{prefix}-bare-{samples}", topic)
            bare.subscribe()
            options = MqttOptions(url=f"mqtt://127.0.0.1:{PORT}", client_id=f"{prefix}-bridge-{samples}",
                                  template=f"{prefix}/{{asset_id}}/{{modality}}", receive_maximum=RECEIVE_MAXIMUM)
            bridge_drain(settings, options, 0, size, 30)  # creates the bridge's session and subscription
            measured: dict[str, list[tuple[float, float]]] = {"paho": [], "bridge": [], "decode + Kafka": []}
            for repetition in range(repetitions):
                publish(topic, messages)
                seconds, total = bare.drain(count, 300)
                measured["paho"].append((count / seconds, total / seconds / 1e6))
                seconds, total = bridge_drain(settings, options, count, size, 300)
                measured["bridge"].append((count / seconds, total / seconds / 1e6))
                seconds, total = kafka_only(settings, messages)
                measured["decode + Kafka"].append((count / seconds, total / seconds / 1e6))
                log(f"[mqtt_bridge] {name} repetition {repetition + 1}: paho {measured['paho'][-1][0]:.0f} msg/s,"
                    f" bridge {measured['bridge'][-1][0]:.0f} msg/s,"
                    f" decode + Kafka {measured['decode + Kafka'][-1][0]:.0f} msg/s")
            ratios = [b / p for (b, _), (p, _) in zip(measured["bridge"], measured["paho"], strict=True)]
            ratios_all += ratios
            ceiling = [b / k for (b, _), (k, _) in zip(measured["bridge"], measured["decode + Kafka"], strict=True)]
            for reader in ("paho", "bridge", "decode + Kafka"):
                rows.append([name, reader, stat((m for m, _ in measured[reader]), 0),
                             stat((mb for _, mb in measured[reader]), 1),
                             stat(ratios, 3) if reader == "bridge" else "",
                             stat(ceiling, 3) if reader == "bridge" else ""])
            figures[name] = {"messages": count, "message_bytes": size,
                             "messages_per_s": {r: stat((m for m, _ in v), 1) for r, v in measured.items()},
                             "mb_per_s": {r: stat((mb for _, mb in v), 2) for r, v in measured.items()},
                             "ratio": stat(ratios, 3), "bridge_over_decode_kafka": stat(ceiling, 3)}
    finally:
        delete_topics(settings, [topics.vibration, topics.dead_letter])
    worst = min(figures[name]["ratio"]["median"] for name, _, _ in cases)
    return {
        "title": "MQTT bridge: into Kafka against a bare paho subscriber",
        "method": method_text(__doc__),
        "goal": {"text": f"bridge messages/s ≥ {GOAL:g} × a bare paho subscriber's on the same broker",
                 "met": worst >= GOAL,
                 "value": "; ".join(f"{name}: {figures[name]['ratio']['median']:.3f}" for name, _, _ in cases)},
        "parameters": {"broker": f"Mosquitto 127.0.0.1:{PORT}", "qos": 1, "receive_maximum": RECEIVE_MAXIMUM,
                       "repetitions": repetitions, "kafka": settings.bootstrap_servers,
                       "cases": {name: {"samples": samples, "messages": count} for name, samples, count in cases}},
        "tables": [{"caption": "Draining N queued messages (median (min–max))",
                    "columns": ["payload", "reader", "messages/s", "MB/s", "bridge ÷ paho",
                                "bridge ÷ decode + Kafka"], "rows": rows}],
        "figures": figures,
        "notes": [],
    }
