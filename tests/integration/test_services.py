"""The local services are the real ones, and the clients fusewatch builds on speak to them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient

from connectors.kafka.producer import EventProducer
from fusewatch.core.kafka_settings import KafkaSettings
from tests.integration.conftest import InfluxV1

pytestmark = pytest.mark.integration


def test_the_broker_is_kafka_4_in_kraft_mode(kafka_broker: KafkaSettings) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.servers(), request_timeout_ms=10_000)
    try:
        version = admin.get_broker_version_data(1).broker_version  # inferred from the ApiVersions handshake
        cluster = admin.describe_cluster()
        quorum = admin.describe_metadata_quorum()  # answered only by a KRaft controller quorum
    finally:
        admin.close()
    assert tuple(version[:2]) >= (4, 0), version
    assert [broker["broker_id"] for broker in cluster["brokers"]] == [1]
    voters = quorum["topics"][0]["partitions"][0]["current_voters"]
    assert [voter["replica_id"] for voter in voters] == [1]


def test_aiokafka_produces_and_consumes_in_a_group(kafka: KafkaSettings) -> None:
    """aiokafka (under faust-streaming) against the broker: idempotent produce, group join, commit."""
    topic = kafka.topics().scores

    async def run() -> tuple[list[bytes], int | None]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=True)
        await producer.start()
        try:
            for index in range(20):
                await producer.send(topic, value=b"value-%d" % index, key=b"pump-%d" % (index % 4))
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=kafka.bootstrap_servers, group_id=f"{kafka.topic_prefix}group",
            auto_offset_reset="earliest", enable_auto_commit=False,
        )
        await consumer.start()
        values: list[bytes] = []
        try:
            for _ in range(60):  # bounded: at most 60 polls of 0.5 s
                batch = await consumer.getmany(timeout_ms=500)
                values += [message.value for messages in batch.values() for message in messages if message.value]
                if len(values) >= 20:
                    break
            await consumer.commit()
            partitions = sorted(consumer.assignment(), key=lambda tp: tp.partition)
            committed = sum([await consumer.committed(tp) or 0 for tp in partitions])
        finally:
            await consumer.stop()
        return values, committed

    values, committed = asyncio.run(run())
    assert sorted(values) == sorted(b"value-%d" % index for index in range(20))
    assert committed == 20


def test_influxdb_is_the_debian_1x_server(influxdb_server: str) -> None:
    with urllib.request.urlopen(f"{influxdb_server}/ping", timeout=5) as response:
        assert response.status == 204
        assert response.headers["X-Influxdb-Version"].startswith("1.")


def test_influxdb_points_with_the_same_series_and_time_overwrite(influxdb: InfluxV1) -> None:
    """The property fusewatch's sinks rely on: rewriting a deterministic point replaces it."""
    assert influxdb.write("score,asset_id=pump-1,run_id=live fused=0.2 1767571200000000000") == 204
    assert influxdb.write("score,asset_id=pump-1,run_id=live fused=0.7 1767571200000000000\n"
                          "score,asset_id=pump-2,run_id=live fused=0.1 1767571200000000000") == 204
    series = influxdb.query('SELECT "fused" FROM "score" GROUP BY "asset_id"')[0]["series"]
    values = {entry["tags"]["asset_id"]: entry["values"] for entry in series}
    assert values == {"pump-1": [[1767571200000000000, 0.7]], "pump-2": [[1767571200000000000, 0.1]]}


def test_each_test_gets_a_database_of_its_own(influxdb: InfluxV1) -> None:
    databases = [row[0] for row in influxdb.query("SHOW DATABASES", database="")[0]["series"][0]["values"]]
    assert influxdb.database in databases
    assert influxdb.query('SELECT * FROM "score"')[0].get("series") is None


def test_faust_streaming_consumes_from_the_broker(kafka: KafkaSettings, tmp_path: Path) -> None:
    """faust-streaming 0.15.3 joins a group on the broker, is assigned the partitions and reads every message."""
    topic = kafka.topics().vibration
    with EventProducer(kafka) as producer:
        for index in range(30):
            producer.send_raw(topic, f"pump-{index % 5}", b"x" * (index + 1))
    out = tmp_path / "seen.txt"
    env = {
        **os.environ, "PROBE_KAFKA": kafka.bootstrap_servers, "PROBE_APP": f"{kafka.topic_prefix}probe",
        "PROBE_TOPIC": topic, "PROBE_OUT": str(out), "PROBE_DIR": str(tmp_path / "faust"),
    }
    probe = Path(__file__).with_name("faust_probe.py")
    with subprocess.Popen([sys.executable, str(probe), "worker", "--loglevel", "warn"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as worker:
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and worker.poll() is None:
                if out.exists() and len(out.read_text().splitlines()) >= 30:
                    break
                time.sleep(0.5)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                output = worker.communicate(timeout=60)[0].decode(errors="replace")
            except subprocess.TimeoutExpired:
                worker.kill()
                output = worker.communicate()[0].decode(errors="replace")
    lines = out.read_text().splitlines() if out.exists() else []
    assert sorted(lines) == sorted(f"pump-{index % 5} {index + 1}" for index in range(30)), output[-3000:]


def test_mosquitto_keeps_more_than_1000_messages_for_a_disconnected_persistent_session() -> None:
    """Mosquitto 2.0 from services.sh: persistence on, and 1,500 QoS 1 messages queued for a subscriber that is away
    all reach it (at Mosquitto's default ``max_queued_messages`` of 1000, 500 would be dropped silently)."""
    import uuid

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    port = int(os.environ.get("FUSEWATCH_MQTT_PORT", "1883"))
    conf = Path(os.environ.get("FUSEWATCH_CACHE", Path.home() / ".cache" / "fusewatch")) / "mosquitto/mosquitto.conf"
    settings = conf.read_text(encoding="utf-8").splitlines()
    assert "persistence true" in settings and "max_queued_messages 1000000" in settings
    topic = f"fwtest-{uuid.uuid4().hex[:10]}/queued"
    received: list[bytes] = []

    def subscriber() -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{topic}-sub", protocol=paho.MQTTv5)
        client.on_message = lambda c, u, message: received.append(bytes(message.payload))
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 60
        client.connect("127.0.0.1", port, clean_start=False, properties=properties)
        return client

    client = subscriber()
    client.loop_start()
    client.subscribe(topic, qos=1)
    time.sleep(0.3)  # the SUBACK
    client.disconnect()
    client.loop_stop()
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{topic}-pub", protocol=paho.MQTTv5)
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    infos = [publisher.publish(topic, b"%d" % index, qos=1) for index in range(1500)]
    for info in infos:
        info.wait_for_publish(timeout=10)
    publisher.disconnect()
    publisher.loop_stop()
    client = subscriber()
    client.loop_start()
    deadline = time.monotonic() + 15
    while len(received) < 1500 and time.monotonic() < deadline:
        time.sleep(0.05)
    # end the session: clean start with no expiry, so the broker forgets it
    client.disconnect()
    client.loop_stop()
    cleanup = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{topic}-sub", protocol=paho.MQTTv5)
    cleanup.connect("127.0.0.1", port, clean_start=True)
    cleanup.disconnect()
    assert sorted(received, key=int) == [b"%d" % index for index in range(1500)]
