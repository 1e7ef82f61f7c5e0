"""`fusewatch ingest opcua` against a real asyncua server process and the real broker: values in → the same events
on Kafka, unreadable values → dead letters, a server down for 30 s → reconnect, Sign/SignAndEncrypt certificates."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from connectors.ingest.gateway import KafkaGateway
from connectors.ingest.health import BridgeHealth
from connectors.ingest.opcua import OpcuaBridge
from connectors.ingest.opcua_client import connect, disconnect
from connectors.ingest.opcua_values import watched_nodes
from connectors.kafka.admin import create_topics, delete_topics
from connectors.kafka.consumer import read_topics
from fusewatch.core.codec import decode
from fusewatch.core.errors import ServiceUnavailableError
from fusewatch.core.events import CameraFrame, MaintenanceLog, VibrationChunk
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.plant import Plant, load_plant

pytestmark = pytest.mark.integration
SERVER = Path(__file__).with_name("opcua_server.py")
MODALITY = {VibrationChunk: "Vibration", CameraFrame: "Image", MaintenanceLog: "Log"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``opcua_server.py`` as a process of its own; ``published`` lists what it wrote."""

    def __init__(self, tmp: Path, port: int, *options: str, start_ns: int | None = None, env: Any = None) -> None:
        self.port, self.options, self.env = port, options, env
        self.published = tmp / f"published-{port}.jsonl"
        self.start_ns = start_ns if start_ns is not None else time.time_ns() // 10**9 * 10**9
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> ServerProcess:
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", str(self.port), "--start-ns", str(self.start_ns),
             "--published", str(self.published), "--stop-after", "120", "--wait-for-client", *self.options],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "ready" (the server stops by itself after --stop-after)
        assert line.strip() == "ready", f"the OPC UA test server did not start (exit {self.process.poll()})"
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            self.process.wait(timeout=10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def lines(self) -> list[dict[str, Any]]:
        if not self.published.exists():
            return []
        return [json.loads(line) for line in self.published.read_text().splitlines()]


@contextmanager
def server(tmp: Path, *options: str, env: Any = None) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp, free_port(), *options, env=env).start()
    try:
        yield process
    finally:
        process.stop()


def plant_of(tmp: Path, port: int, assets: int, opcua_extra: str = "", images: bool = True) -> Plant:
    text = f'[opcua]\nurl = "opc.tcp://127.0.0.1:{port}/fusewatch"\npublishing_interval_ms = 50\n{opcua_extra}\n'
    for i in range(assets):
        a = f"pump-{i:02d}"
        text += (f'[[assets]]\nid = "{a}"\nkind = "pump"\n'
                 f'vibration = {{ source = "opcua", node = "ns=2;s={a}.Vibration",'
                 f' sample_rate_node = "ns=2;s={a}.SampleRate" }}\n'
                 + (f'camera = {{ id = "cam-{i}", source = "opcua", node = "ns=2;s={a}.Image" }}\n' if images else "")
                 + f'logs = {{ source = "opcua", node = "ns=2;s={a}.Log", author = "operator" }}\n')
    path = tmp / "plant.toml"
    path.write_text(text)
    return load_plant(path)


class RunningBridge:
    """An :class:`OpcuaBridge` running in a thread of its own with its own event loop."""

    def __init__(self, plant: Plant, settings: KafkaSettings, **options: Any) -> None:
        assert plant.opcua is not None
        self.gateway = KafkaGateway(settings, "opcua-test")
        self.health = BridgeHealth("opcua", self.gateway.stats)
        self.bridge = OpcuaBridge(plant.opcua, watched_nodes(plant, plant.opcua.url), self.gateway, self.health,
                                  timeout_s=2.0, check_every_s=0.5, **options)
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        async def main() -> None:
            self.stop_event = asyncio.Event()
            await self.bridge.run(self.stop_event)

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:
            self.error = exc
        finally:
            self.loop.close()

    def wait(self, condition: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition(self.health.report()[1]):
            assert time.monotonic() < deadline, f"{what} within {timeout_s} s; health: {self.health.report()[1]}"
            assert self.thread.is_alive(), f"the bridge stopped: {self.error!r}"
            time.sleep(0.1)

    def stop(self) -> dict[str, Any]:
        while self.stop_event is None:
            time.sleep(0.01)
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=30)
        assert not self.thread.is_alive() and self.error is None, f"the bridge did not stop cleanly: {self.error!r}"
        self.gateway.close()
        return self.health.report()[1]


def kafka_events(settings: KafkaSettings) -> tuple[list[tuple[str, str, int, str]], list[dict[str, Any]]]:
    """(asset, node kind, event time, sha256 of the samples/image/text) of every input message; the dead letters."""
    topics = settings.topics()
    events, letters = [], []
    for record in read_topics(settings, [topics.vibration, topics.frames, topics.maintenance_logs, topics.dead_letter]):
        if record.topic == topics.dead_letter:
            letters.append(json.loads(record.value))
            continue
        event = decode(record.value)
        assert record.key == event.asset_id.encode() and record.timestamp_ms == event.ts // 1_000_000
        data = (event.samples.astype("<f4").tobytes() if isinstance(event, VibrationChunk)
                else event.data if isinstance(event, CameraFrame) else event.text.encode())  # type: ignore[union-attr]
        events.append((event.asset_id, MODALITY[type(event)], event.ts, hashlib.sha256(data).hexdigest()))
    return events, letters


def expected(published: list[dict[str, Any]]) -> list[tuple[str, str, int, str]]:
    return sorted((p["asset"], p["modality"], p["ts"], p["sha256"]) for p in published if not p["bad"])


def test_values_arrive_as_the_same_events_and_unreadable_ones_as_dead_letters(kafka: KafkaSettings,
                                                                               tmp_path: Path) -> None:
    with server(tmp_path, "--assets", "2", "--images", "--logs", "--ticks", "4", "--malformed-after", "1",
                "--linger", "60") as opcua:
        bridge = RunningBridge(plant_of(tmp_path, opcua.port, 2), kafka)
        # 2 assets x 3 nodes x (the values before the first tick + 4 ticks), but the tick of the NaN array writes
        # only that one of pump-00's nodes: 28 values, 4 of them unreadable
        bridge.wait(lambda h: h["sent"] + h["dead_letters"] >= 28, 30, "28 values sent")
        health = bridge.stop()
    published = opcua.lines()
    events, letters = kafka_events(kafka)
    assert len(published) == 28 and health["sent"] == 24 and health["dead_letters"] == 4
    assert sorted(events) == expected(published) and len(set(events)) == len(events)
    vibration = [e for e in events if e[1] == "Vibration"]
    assert {e[0] for e in vibration} == {"pump-00", "pump-01"} and len(vibration) == 8
    reasons = {(letter["source_topic"].split("#")[1], letter["error"].split(" (")[0]) for letter in letters}
    assert reasons == {("ns=2;s=pump-00.Vibration", "samples: is empty"),
                       ("ns=2;s=pump-00.Image", "image: cannot be read"),
                       ("ns=2;s=pump-00.Log", "text: is blank"),
                       ("ns=2;s=pump-00.Vibration", "samples: contains NaN or infinity")}
    assert all(letter["source_topic"].startswith(f"opc.tcp://127.0.0.1:{opcua.port}#") for letter in letters)
    bad_times = sorted(p["ts"] for p in published if p["bad"] and p["modality"] == "Vibration")
    assert sorted(letter["ts"] for letter in letters if "Vibration" in letter["source_topic"]) == [
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts // 10**9)) for ts in bad_times]


@pytest.mark.slow
def test_server_down_30_s_then_the_bridge_reconnects_and_resumes(kafka: KafkaSettings, tmp_path: Path) -> None:
    opcua = ServerProcess(tmp_path, free_port(), "--assets", "1", "--samples", "25600").start()
    try:
        bridge = RunningBridge(plant_of(tmp_path, opcua.port, 1, images=False), kafka, backoff_max_s=2.0)
        bridge.wait(lambda h: h["sent"] >= 3, 20, "3 snapshots sent")
        opcua.stop(kill=True)
        bridge.wait(lambda h: not h["source_connected"], 10, "the lost server noticed")
        sent_before = bridge.health.report()[1]["sent"]
        time.sleep(30)
        assert bridge.health.report()[1]["sent"] == sent_before
        opcua.start()
        bridge.wait(lambda h: h.get("reconnects", 0) == 1 and h["source_connected"], 15, "reconnected")
        bridge.wait(lambda h: h["sent"] >= sent_before + 3, 15, "3 snapshots more")
        opcua.stop()
        time.sleep(0.5)
        health = bridge.stop()
    finally:
        opcua.stop(kill=True)
    events, letters = kafka_events(kafka)
    times = [e[2] for e in events]
    assert not letters and times == sorted(set(times)) and len(events) == health["sent"]
    assert sorted(events) == expected(opcua.lines())  # every value the server had, both lives, once each
    gap = max(b - a for a, b in itertools.pairwise(times))
    assert gap >= 30 * 10**9  # the outage: nothing in between, then the values of the restarted server


def test_while_kafka_cannot_take_values_the_subscription_pauses_and_nothing_is_lost(kafka: KafkaSettings,
                                                                                   tmp_path: Path) -> None:
    delete_topics(kafka, [kafka.topics().vibration])  # sends fail (no such topic) until it is created again
    with server(tmp_path, "--assets", "1", "--samples", "2560", "--period", "0.25", "--ticks", "24",
                "--linger", "60") as opcua:
        settings = kafka.model_copy(update={"timeout_s": 1.0})
        bridge = RunningBridge(plant_of(tmp_path, opcua.port, 1, images=False), settings, max_pending=4,
                               queue_size=30)
        bridge.wait(lambda h: h["paused"], 15, "publishing paused")
        time.sleep(2.0)  # values keep coming on the server and wait in its queue
        assert bridge.health.report()[1]["sent"] == 0
        create_topics(kafka)
        bridge.wait(lambda h: h["sent"] == 25 and not h["paused"], 30, "every value sent after the pause")
        health = bridge.stop()
    events, letters = kafka_events(kafka)
    assert health["pauses"] >= 1 and health["paused_s"] >= 2.0 and health["kafka_retries"] >= 1
    assert not health.get("lost") and not letters
    assert sorted(events) == expected(opcua.lines()) and len(opcua.lines()) == 25


def certificate(directory: Path, name: str, uri: str, use: x509.ObjectIdentifier) -> tuple[Path, Path]:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, name, {"organizationName": "fusewatch tests"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost"),
         x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName(socket.gethostname())], extended=[use])
    (directory / "keys").mkdir(parents=True, exist_ok=True)  # not among the certificates a trust list reads
    (directory / "keys" / f"{name}.key.pem").write_bytes(cert_gen.dump_private_key_as_pem(key))
    (directory / f"{name}.der").write_bytes(cert.public_bytes(Encoding.DER))
    return directory / f"{name}.der", directory / "keys" / f"{name}.key.pem"


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
def test_security_with_certificates_and_a_refused_certificate(kafka: KafkaSettings, tmp_path: Path,
                                                              mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server_cert, server_key = certificate(tmp_path / "server", "server", "urn:freeopcua:python:server",
                                          ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key = certificate(tmp_path / "trusted", "bridge", "urn:fusewatch:bridge",
                                          ExtendedKeyUsageOID.CLIENT_AUTH)
    other_cert, other_key = certificate(tmp_path / "untrusted", "other", "urn:fusewatch:other",
                                        ExtendedKeyUsageOID.CLIENT_AUTH)
    monkeypatch.setenv("OPCUA_TEST_PASSWORD", "s3cret-for-opcua")
    env = {**__import__("os").environ}
    security = "sign" if mode == "Sign" else "encrypt"
    with server(tmp_path, "--assets", "1", "--logs", "--samples", "256", "--security", security, "--cert",
                str(server_cert), "--key", str(server_key), "--trust", str(tmp_path / "trusted"),
                "--user", "bridge", env=env) as opcua:
        settings = (f'security_policy = "Basic256Sha256"\nsecurity_mode = "{mode}"\ncertificate = "{client_cert}"\n'
                    f'private_key = "{client_key}"\nusername = "bridge"\npassword_env = "OPCUA_TEST_PASSWORD"\n')
        plant = plant_of(tmp_path, opcua.port, 1, settings, images=False)
        bridge = RunningBridge(plant, kafka)
        bridge.wait(lambda h: h["sent"] >= 3, 20, "values sent over the secured channel")
        health = bridge.stop()
        assert health["source_connected"] is False and not health.get("reconnects")

        wrong = plant.opcua.model_copy(update={"certificate": other_cert, "private_key": other_key})  # type: ignore
        with pytest.raises(ServiceUnavailableError) as refused:
            asyncio.run(connect(wrong, wrong.url, 3.0))
        message = str(refused.value)
        assert f"opc.tcp://127.0.0.1:{opcua.port}" in message and "refused the connection" in message
        assert "trust this certificate" in message and "s3cret" not in message

        unsecured = plant.opcua.model_copy(update={"security_policy": "None", "security_mode": "None"})  # type: ignore
        with pytest.raises(ServiceUnavailableError, match=r"refused the connection|offers no endpoint"):
            asyncio.run(_connect_and_close(unsecured))
    events, _ = kafka_events(kafka)
    assert len(events) == health["sent"] and {e[0] for e in events} == {"pump-00"}


async def _connect_and_close(opcua: Any) -> None:
    client = await connect(opcua, opcua.url, 3.0)
    await disconnect(client, 3.0)
