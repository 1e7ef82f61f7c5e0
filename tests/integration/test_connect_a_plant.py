"""A plant connected end to end: three assets fed by MQTT, OPC UA and files, cameras by HTTP snapshots, work
orders by a CMMS export → `fusewatch worker` → `fusewatch sink` → InfluxDB (docs/connect-a-plant.md).

Every part is real: the local Mosquitto, an asyncua server process, an HTTP server serving the simulator's JPEGs,
the bridges and the importer as `fusewatch` processes, the Kafka broker, the worker, the sink and InfluxDB. The
plant is the simulator's (3 assets × 1 h ending an hour ago): its waveforms go to the MQTT broker (pump-01), the
OPC UA server (motor-02) and NPY files (pump-03), its frames to the cameras, and a CMMS CSV holds the work orders.
The worker must score every asset's windows with each stream present, as the embedded runner does from the same
events, and the sink must have written them into InfluxDB.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from connectors.kafka.consumer import read_topics
from connectors.sources.simulator.config import SimulatorConfig
from connectors.sources.simulator.plant import PlantSimulator
from fusewatch.core.events import CameraFrame, MaintenanceLog, VibrationChunk
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import NS_PER_HOUR, NS_PER_MIN, format_time
from tests.integration.conftest import InfluxV1
from tests.integration.sinks import SinkProcess
from tests.integration.workers import WorkerProcess, free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MQTT_URL = os.environ.get("FUSEWATCH_TEST_MQTT", "mqtt://127.0.0.1:1883")
PLAYBACK = Path(__file__).with_name("opcua_playback.py")
BY_MQTT, BY_OPCUA, BY_FILES = "pump-01", "motor-02", "pump-03"


class Cameras:
    """IP cameras on loopback: ``GET /<asset>.jpg`` serves the asset's next frame, its time in ``X-Timestamp``."""

    def __init__(self, frames: dict[str, list[CameraFrame]]) -> None:
        self.frames = frames
        self.served = {asset: 0 for asset in frames}
        cameras = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                asset = self.path.strip("/").removesuffix(".jpg")
                if asset not in cameras.frames:
                    self.send_error(404)
                    return
                index = min(cameras.served[asset], len(cameras.frames[asset]) - 1)  # the last one stays
                cameras.served[asset] = index + 1
                frame = cameras.frames[asset][index]
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(frame.data)))
                self.send_header("X-Timestamp", f"{frame.ts // 1_000_000_000}.{frame.ts % 1_000_000_000:09d}")
                self.end_headers()
                self.wfile.write(frame.data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Fusewatch:
    """`fusewatch` processes of the test with its topic prefix; all are stopped at the end."""

    def __init__(self, kafka: KafkaSettings, directory: Path) -> None:
        self.kafka, self.directory = kafka, directory
        self.env = {**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": kafka.topic_prefix}
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.directory / f"{name}.log", "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "fusewatch.cli", "--log-level", "INFO", *args],
                                       env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append((name, process))
        return process

    def run(self, name: str, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "fusewatch.cli", *args], env=self.env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"{name}: {result.stdout}\n{result.stderr}"
        return result.stdout

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        for _, process in self.processes:
            if process.poll() is None:
                process.terminate()
        for _, process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture()
def fusewatch(kafka: KafkaSettings, tmp_path: Path) -> Iterator[Fusewatch]:
    processes = Fusewatch(kafka, tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


def plant_file(path: Path, sim: PlantSimulator, mqtt_prefix: str, opcua_port: int, camera_port: int) -> Path:
    lines = ['[plant]\nname = "connect-a-plant test"\n',
             f'[mqtt]\nurl = "{MQTT_URL}"\ntopic_template = "{mqtt_prefix}/{{asset_id}}/{{modality}}"\n'
             f'client_id = "{mqtt_prefix}-bridge"\n',
             f'[opcua]\nurl = "opc.tcp://127.0.0.1:{opcua_port}/playback/"\n']
    source = {BY_MQTT: '{ source = "mqtt" }',
              BY_OPCUA: f'{{ source = "opcua", node = "ns=2;s={BY_OPCUA}.Vibration", sample_rate_hz = 25600 }}',
              BY_FILES: '{ source = "file" }'}
    for asset_id, info in sim.asset_registry().assets.items():
        k = info.bearing
        assert k is not None
        lines.append(
            f'[[assets]]\nid = "{asset_id}"\nkind = "{info.kind}"\n'
            f"bearing = {{ shaft_hz = {k.shaft_hz}, bpfo_hz = {k.bpfo_hz}, bpfi_hz = {k.bpfi_hz},"
            f" bsf_hz = {k.bsf_hz}, ftf_hz = {k.ftf_hz} }}\n"
            f"vibration = {source[asset_id]}\nlogs = {{ source = \"file\" }}\n"
            f'[assets.camera]\nid = "cam-{asset_id}"\nsource = "http"\n'
            f'url = "http://127.0.0.1:{camera_port}/{asset_id}.jpg"\ninterval_s = 0.05\ntimeout_s = 5\n')
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def publish_mqtt(prefix: str, chunks: list[VibrationChunk]) -> None:
    """What a gateway sends: each snapshot as JSON with base64 float32 samples, QoS 1."""
    host, port = MQTT_URL.removeprefix("mqtt://").split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-gateway", protocol=mqtt.MQTTv5)
    client.connect(host, int(port))
    client.loop_start()
    try:
        for chunk in chunks:
            payload = json.dumps({"ts": format_time(chunk.ts), "sample_rate_hz": chunk.sample_rate_hz,
                                  "samples_b64": base64.b64encode(chunk.samples.astype("<f4").tobytes()).decode()})
            client.publish(f"{prefix}/{chunk.asset_id}/vibration", payload, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def bridge_health(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:  # 503: not (yet) healthy, same body
        with error:
            return dict(json.loads(error.read()))
    except OSError:
        return {}


def scores_in_influx(influxdb: InfluxV1) -> dict[str, list[list[Any]]]:
    result = influxdb.query('SELECT "fused", "present_vibration", "present_camera" FROM fusewatch_score'
                            ' GROUP BY "asset_id"')[0]
    return {series["tags"]["asset_id"]: series["values"] for series in result.get("series", [])}


def test_three_assets_by_mqtt_opcua_and_files_with_cameras_and_a_cmms_export_are_scored_into_influxdb(
        kafka: KafkaSettings, influxdb: InfluxV1, fusewatch: Fusewatch, tmp_path: Path) -> None:
    start = (time.time_ns() - 2 * NS_PER_HOUR) // NS_PER_MIN * NS_PER_MIN
    sim = PlantSimulator(SimulatorConfig(assets=3, days=1 / 24, seed=21, start_ns=start))
    chunks: dict[str, list[VibrationChunk]] = {asset: [] for asset in (BY_MQTT, BY_OPCUA, BY_FILES)}
    frames: dict[str, list[CameraFrame]] = {asset: [] for asset in chunks}
    logs: list[MaintenanceLog] = []
    for step in sim.steps():
        for event in step:
            if isinstance(event, VibrationChunk):
                chunks[event.asset_id].append(event)
            elif isinstance(event, CameraFrame):
                frames[event.asset_id].append(event)
            elif isinstance(event, MaintenanceLog):
                logs.append(event)
    prefix = f"fwtest-{uuid.uuid4().hex[:8]}"
    opcua_port = free_port()
    cameras = Cameras(frames)
    try:
        plant = plant_file(tmp_path / "plant.toml", sim, prefix, opcua_port, cameras.port)
        assert "3 assets" in fusewatch.run("plant check", "plant", "check", str(plant))
        np.savez(tmp_path / "opcua.npz", asset_id=np.array(BY_OPCUA), ts=np.array([c.ts for c in chunks[BY_OPCUA]]),
                 samples=np.stack([c.samples for c in chunks[BY_OPCUA]]))
        server = subprocess.Popen([sys.executable, str(PLAYBACK), "--port", str(opcua_port), "--npz",
                                   str(tmp_path / "opcua.npz"), "--period", "0.1"], stdout=subprocess.PIPE, text=True)
        fusewatch.processes.append(("opcua-server", server))  # type: ignore[arg-type]
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"

        worker = WorkerProcess(kafka, tmp_path, f"{prefix}-workers", plant, "worker")
        fusewatch.processes.append(("worker", worker.process))
        sink = SinkProcess(kafka, tmp_path, influxdb.url, influxdb.database, f"{prefix}-sink")
        fusewatch.processes.append(("sink", sink.process))
        kafka_args = ("--kafka", kafka.bootstrap_servers, "--plant", str(plant))
        health_port = free_port()
        fusewatch.start("mqtt", "ingest", "mqtt", *kafka_args, "--health-port", str(health_port))
        fusewatch.start("opcua", "ingest", "opcua", *kafka_args)
        fusewatch.start("camera", "ingest", "camera", *kafka_args, "--max-skew", str(3 * 3600))

        # the history of pump-03 as NPY files named by their time, the work orders as a CMMS export
        files = tmp_path / "files"
        files.mkdir()
        for chunk in chunks[BY_FILES]:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(chunk.ts // 1_000_000_000))
            np.save(files / f"{BY_FILES}_{stamp}.npy", chunk.samples)
        orders = [(entry.asset_id, format_time(entry.ts), entry.text) for entry in logs]
        orders += [(asset, format_time(start + (10 + 15 * i) * NS_PER_MIN), f"round {i}: checked, no finding")
                   for asset in chunks for i in range(3)]
        with open(tmp_path / "orders.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Machine", "Date", "Description"])
            writer.writerows(orders)
        # the gateway publishes once the bridge's session holds the subscription (the broker keeps it from then on)
        wait_until(lambda: bridge_health(health_port).get("source_connected") is True, 60, "the MQTT bridge")
        publisher = threading.Thread(target=publish_mqtt, args=(prefix, chunks[BY_MQTT]))
        publisher.start()
        fusewatch.run("import vibration", "import", "vibration", *sorted(map(str, files.glob("*.npy"))),
                      "--time-pattern", "{asset_id}_%Y%m%dT%H%M%S.npy", "--sample-rate", "25600", "--plant",
                      str(plant), "--kafka", kafka.bootstrap_servers, "--no-progress")
        fusewatch.run("import logs", "import", "logs", str(tmp_path / "orders.csv"), "--map",
                      "asset=Machine,time=Date,text=Description", "--kafka", kafka.bootstrap_servers, "--no-progress")
        publisher.join(120)

        def scored() -> bool:
            found = scores_in_influx(influxdb)
            return all(sum(1 for row in found.get(asset, []) if row[2] and row[3]) >= 50 for asset in chunks)

        wait_until(scored, 240, "50 windows with vibration and camera per asset in InfluxDB", worker)
    finally:
        cameras.close()
    found = scores_in_influx(influxdb)
    for asset in chunks:
        rows = found[asset]
        assert len(rows) <= 60 and all(0.0 <= row[1] <= 1.0 for row in rows), asset
        with_both = [row for row in rows if row[2] and row[3]]
        assert len(with_both) >= 50, (asset, len(rows), len(with_both))
    assert list(read_topics(kafka, [kafka.topics().dead_letter])) == []
    entries = influxdb.query('SELECT count("text") FROM fusewatch_log')[0]["series"][0]["values"][0][1]
    assert entries == len(orders)
    for name in ("mqtt", "opcua", "camera"):
        assert "Traceback" not in fusewatch.log(name), fusewatch.log(name)
