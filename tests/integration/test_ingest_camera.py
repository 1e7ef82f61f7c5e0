"""The camera bridge against a real HTTP server on loopback serving real JPEGs (elpv solar cells) into real Kafka.

The server plays eight cameras: Basic (``X-Timestamp``), Digest (RFC 7616, SHA-256, qop=auth; EXIF time),
open (``Last-Modified``), a wrong password, an HTML login page, a truncated JPEG, one slower than its timeout and
one answering 500. Every JPEG the good cameras served must be on the frames topic, keyed by asset, with the
camera's time, byte for byte; the bad ones are in health, and the bodies that are no JPEG are dead letters.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from connectors.ingest.camera import CameraBridge
from connectors.ingest.gateway import KafkaGateway
from connectors.ingest.health import BridgeHealth
from connectors.kafka.consumer import read_topics
from connectors.sources.datasets.fetch import fetch
from fusewatch.core.codec import decode
from fusewatch.core.events import CameraFrame
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.plant import CameraStream
from fusewatch.core.timeutil import NS_PER_MS, NS_PER_S

pytestmark = pytest.mark.integration

USER, PASSWORD, REALM = "viewer", "correct horse", "cam@fusewatch-test"


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    """Six real photographs: electroluminescence images of solar cells from the elpv data set (PNG in the wheel)."""
    with zipfile.ZipFile(fetch("elpv-dataset")) as wheel:
        return [Image.open(io.BytesIO(wheel.read(f"elpv_dataset/data/images/cell{n:04d}.png"))).convert("L")
                for n in range(1, 7)]


def jpeg(image: Image.Image, exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **({} if exif is None else {"exif": exif}))
    return buffer.getvalue()


class Cameras:
    """A loopback HTTP server of several cameras (by path); it logs every snapshot it served in full."""

    def __init__(self, photos: list[Image.Image], port: int = 0) -> None:
        self.photos = photos
        self.jpegs = [jpeg(photo) for photo in photos]
        self.served: list[tuple[str, int, bytes]] = []  # (path, the time it announced or received, bytes)
        self.nonces: set[str] = set()
        self.connections: list[socket.socket] = []
        self.count = 0
        self.lock = threading.Lock()
        self.port = port
        self.server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        cameras = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with cameras.lock:
                    cameras.connections.append(self.connection)

            def do_GET(self) -> None:
                cameras.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        with self.lock:  # a camera that goes away takes its kept-alive connections with it
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self.connections.clear()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def next_jpeg(self) -> tuple[int, bytes]:
        with self.lock:
            self.count += 1
            return self.count, self.jpegs[self.count % len(self.jpegs)]

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        received = time.time_ns()
        path = request.path
        headers: dict[str, str] = {}
        if path == "/basic.jpg" and request.headers.get("Authorization") != "Basic " + base64.b64encode(
                f"{USER}:{PASSWORD}".encode()).decode():
            return reply(request, 401, {"WWW-Authenticate": f'Basic realm="{REALM}"'}, b"")
        if path == "/wrong-password.jpg":
            return reply(request, 401, {"WWW-Authenticate": f'Basic realm="{REALM}"'}, b"")
        if path == "/digest.jpg" and not self.digest_ok(request):
            nonce = secrets.token_hex(16)
            with self.lock:
                self.nonces.add(nonce)
            challenge = f'Digest realm="{REALM}", qop="auth", algorithm=SHA-256, nonce="{nonce}", opaque="x1"'
            return reply(request, 401, {"WWW-Authenticate": challenge}, b"")
        if path == "/error.jpg":
            return reply(request, 500, {"Content-Type": "text/plain"}, b"internal error")
        if path == "/login.html":
            return reply(request, 200, {"Content-Type": "text/html"}, b"<html><form>login</form></html>")
        if path == "/truncated.jpg":
            return reply(request, 200, {"Content-Type": "image/jpeg"}, self.jpegs[0][: len(self.jpegs[0]) // 2])
        if path == "/slow.jpg":
            time.sleep(1.0)
        number, body = self.next_jpeg()
        stamp = received
        if path == "/basic.jpg":
            headers["X-Timestamp"] = str(stamp)
        elif path == "/digest.jpg":  # the camera writes its time into the EXIF of each snapshot
            stamp = received - received % NS_PER_MS
            exif = Image.Exif()
            when = datetime.fromtimestamp(stamp / NS_PER_S, UTC)
            exif.get_ifd(0x8769).update({0x9003: when.strftime("%Y:%m:%d %H:%M:%S"), 0x9011: "+00:00",
                                         0x9291: f"{stamp // NS_PER_MS % 1000:03d}"})
            body = jpeg(self.photos[number % len(self.photos)], exif)
        elif path == "/open.jpg":
            stamp = received - received % NS_PER_S
            headers["Last-Modified"] = email.utils.formatdate(stamp / NS_PER_S, usegmt=True)
        try:
            reply(request, 200, {"Content-Type": "image/jpeg", **headers}, body)
        except (BrokenPipeError, ConnectionResetError):  # the bridge gave up waiting (the slow camera)
            return
        with self.lock:
            self.served.append((path, stamp if path != "/plain.jpg" else received, body))

    def digest_ok(self, request: BaseHTTPRequestHandler) -> bool:
        """RFC 7616 with qop=auth: the response hash over the password, nonce, nc, cnonce, method and URI."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        fields = dict(part.strip().split("=", 1) for part in header[7:].split(","))
        values = {key: value.strip('"') for key, value in fields.items()}

        def h(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()

        if values.get("nonce") not in self.nonces or values.get("username") != USER or values.get("qop") != "auth":
            return False
        expected = h(":".join([h(f"{USER}:{REALM}:{PASSWORD}"), values["nonce"], values["nc"], values["cnonce"],
                               "auth", h(f"GET:{values['uri']}")]))
        return values.get("response") == expected and values.get("uri") == request.path


def reply(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
    request.send_response(status)
    for key, value in {**headers, "Content-Length": str(len(body))}.items():
        request.send_header(key, value)
    request.end_headers()
    request.wfile.write(body)


def camera(camera_id: str, url: str, auth: str = "none", password_env: str | None = None,
           timeout_s: float = 2.0) -> CameraStream:
    return CameraStream(id=camera_id, source="http", url=url, interval_s=0.2, timeout_s=timeout_s, auth=auth,
                        username=None if auth == "none" else USER, password_env=password_env)


class Running:
    """The bridge in a thread with its own gateway to the test's topics."""

    def __init__(self, kafka: KafkaSettings, cameras: list[tuple[str, CameraStream]], max_backoff_s: float) -> None:
        self.gateway = KafkaGateway(kafka, "test-camera")
        self.health = BridgeHealth("camera", self.gateway.stats)
        self.bridge = CameraBridge(cameras, self.gateway, self.health, max_backoff_s=max_backoff_s)
        self.thread = threading.Thread(target=self.bridge.run, daemon=True)
        self.thread.start()

    def report(self) -> dict[str, Any]:
        return self.health.report()[1]

    def wait_for(self, condition: Callable[[dict[str, Any]], bool], timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while not condition(report := self.report()):
            assert time.monotonic() < deadline, f"not reached within {timeout_s} s: {json.dumps(report)[:2000]}"
            time.sleep(0.1)
        return report

    def stop(self) -> dict[str, Any]:
        self.bridge.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the bridge did not stop"
        self.gateway.close()
        return self.report()


@pytest.fixture()
def secrets_env() -> Iterator[None]:
    os.environ["FWTEST_CAM_PASSWORD"], os.environ["FWTEST_CAM_WRONG"] = PASSWORD, "tr0ub4dor"
    yield
    del os.environ["FWTEST_CAM_PASSWORD"], os.environ["FWTEST_CAM_WRONG"]


def frames_of(kafka: KafkaSettings) -> list[tuple[bytes | None, int, CameraFrame]]:
    out = []
    for record in read_topics(kafka, [kafka.topics().frames]):
        event = decode(record.value)
        assert isinstance(event, CameraFrame)
        out.append((record.key, record.timestamp_ms, event))
    return out


def assert_arrived(kafka: KafkaSettings, served: list[tuple[str, int, bytes]], asset_of: dict[str, str]) -> None:
    """Every served snapshot is on the frames topic once, in order per camera: key, time, bytes."""
    arrived = frames_of(kafka)
    for path, asset in asset_of.items():
        sent = [(stamp, body) for where, stamp, body in served if where == path]
        got = [(key, timestamp, event) for key, timestamp, event in arrived if event.asset_id == asset]
        assert len(sent) >= 3, f"{path}: only {len(sent)} snapshots served"
        assert len(got) == len(sent), f"{path}: served {len(sent)}, {len(got)} on Kafka"
        for (stamp, body), (key, timestamp, event) in zip(sent, got, strict=True):
            assert key == asset.encode() and event.data == body and event.encoding == "jpeg"
            assert (event.width, event.height) == (300, 300)
            assert timestamp == event.ts // NS_PER_MS
            if path == "/plain.jpg":  # no time from the camera: the moment it was asked, just before it answered
                assert stamp - NS_PER_S < event.ts <= stamp, (path, stamp, event.ts)
            else:
                assert event.ts == stamp, (path, stamp, event.ts)


def test_good_cameras_arrive_whole_and_bad_ones_are_reported(kafka: KafkaSettings, photos: list[Image.Image],
                                                           secrets_env: None) -> None:
    server = Cameras(photos)
    cameras = [("pump-01", camera("cam-basic", server.url("/basic.jpg"), "basic", "FWTEST_CAM_PASSWORD")),
               ("pump-02", camera("cam-digest", server.url("/digest.jpg"), "digest", "FWTEST_CAM_PASSWORD")),
               ("pump-03", camera("cam-open", server.url("/open.jpg"))),
               ("pump-04", camera("cam-wrong", server.url("/wrong-password.jpg"), "basic", "FWTEST_CAM_WRONG")),
               ("pump-05", camera("cam-html", server.url("/login.html"))),
               ("pump-06", camera("cam-cut", server.url("/truncated.jpg"))),
               ("pump-07", camera("cam-slow", server.url("/slow.jpg"), timeout_s=0.3)),
               ("pump-08", camera("cam-500", server.url("/error.jpg")))]
    running = Running(kafka, cameras, max_backoff_s=0.4)
    try:
        running.wait_for(lambda body: all(body["cameras"][c]["frames"] >= 6 for c in ("cam-basic", "cam-digest",
                                                                                      "cam-open")), 15)
        mid = running.report()
    finally:
        report = running.stop()
        server.stop()
    assert_arrived(kafka, server.served, {"/basic.jpg": "pump-01", "/digest.jpg": "pump-02", "/open.jpg": "pump-03"})
    status = report["cameras"]
    assert [status[c]["time_source"] for c in ("cam-basic", "cam-digest", "cam-open")] == [
        "x-timestamp", "exif", "last-modified"]
    assert mid["healthy"] and mid["source_connected"] and mid["cameras_ok"] == "3/8"
    expected = {"cam-wrong": "HTTP 401: wrong credentials", "cam-html": "content-type: text/html, not image/jpeg",
                "cam-cut": "image: truncated JPEG", "cam-slow": "no answer within 0.3 s", "cam-500": "HTTP 500"}
    for camera_id, reason in expected.items():
        assert not status[camera_id]["ok"] and status[camera_id]["consecutive_failures"] >= 1, status[camera_id]
        assert status[camera_id]["last_error"].startswith(reason), status[camera_id]
        assert status[camera_id]["frames"] == 0
    assert report["auth_failures"] >= 1 and report["timeouts"] >= 1 and report["http_errors"] >= 1
    assert PASSWORD not in json.dumps(report) and "tr0ub4dor" not in json.dumps(report)
    # bodies that are no JPEG are dead letters with the reason and the camera URL; HTTP errors are not
    letters = [json.loads(record.value) for record in read_topics(kafka, [kafka.topics().dead_letter])]
    by_source: dict[str, list[dict[str, Any]]] = {}
    for letter in letters:
        by_source.setdefault(letter["source_topic"], []).append(letter)
    assert set(by_source) == {server.url("/login.html"), server.url("/truncated.jpg")}, set(by_source)
    assert len(letters) == status["cam-html"]["dead_letters"] + status["cam-cut"]["dead_letters"]
    assert all(letter["raw_base64"] == "" and letter["partition"] == -1 for letter in letters)
    assert all("cam-html: content-type: text/html" in x["error"] for x in by_source[server.url("/login.html")])
    assert all("cam-cut: image: truncated JPEG" in x["error"] for x in by_source[server.url("/truncated.jpg")])


@pytest.mark.slow
def test_a_camera_down_for_30_s_resumes(kafka: KafkaSettings, photos: list[Image.Image]) -> None:
    server = Cameras(photos)
    running = Running(kafka, [("pump-01", camera("cam-1", server.url("/plain.jpg")))], max_backoff_s=2.0)
    try:
        running.wait_for(lambda body: body["cameras"]["cam-1"]["frames"] >= 3, 10)
        server.stop()
        down = time.monotonic()
        outage = running.wait_for(lambda body: body["cameras"]["cam-1"]["consecutive_failures"] >= 3, 10)
        assert not outage["healthy"] and not outage["source_connected"]
        assert outage["cameras"]["cam-1"]["last_error"].startswith("ConnectError")
        time.sleep(max(0.0, 30.0 - (time.monotonic() - down)))
        before = running.report()["cameras"]["cam-1"]["frames"]
        server.start()  # the same port
        back = running.wait_for(lambda body: body["cameras"]["cam-1"]["frames"] >= before + 3, 10)
    finally:
        running.stop()
        server.stop()
    assert back["healthy"] and back["recoveries"] == 1 and back["reconnects"] == 1
    # with at most 2 s between polls the camera is asked again within 2 s of being back
    assert_arrived(kafka, server.served, {"/plain.jpg": "pump-01"})


def test_the_command_reads_the_plant_file_serves_health_and_stops_on_sigterm(
        kafka: KafkaSettings, photos: list[Image.Image], tmp_path: Path) -> None:
    server = Cameras(photos)
    (tmp_path / "cam.secret").write_text(PASSWORD + "\n", encoding="utf-8")
    plant = tmp_path / "plant.toml"
    plant.write_text(f"""
[[assets]]
id = "pump-01"
kind = "pump"
camera = {{ id = "cam-01", source = "http", url = "{server.url('/digest.jpg')}", interval_s = 0.2, auth = "digest", \
username = "{USER}", password_file = "{tmp_path / 'cam.secret'}" }}
[[assets]]
id = "pump-02"
kind = "pump"
camera = {{ id = "cam-02", source = "http", url = "{server.url('/basic.jpg')}" }}
""", encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bridge = subprocess.Popen(
        [sys.executable, "-m", "fusewatch.cli", "ingest", "camera", "--plant", str(plant), "--only", "cam-01",
         "--kafka", kafka.bootstrap_servers, "--health-port", str(port)],
        env={**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": kafka.topic_prefix}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline, body = time.monotonic() + 20, dict[str, Any]()
        while body.get("received", 0) < 5:
            assert time.monotonic() < deadline and bridge.poll() is None, (body, bridge.poll())
            time.sleep(0.2)
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/health", timeout=2) as response:
                body = json.loads(response.read())
        assert body["healthy"] and list(body["cameras"]) == ["cam-01"]
        bridge.send_signal(signal.SIGTERM)
        out, err = bridge.communicate(timeout=20)
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.communicate()
        server.stop()
    assert bridge.returncode == 0, err[-3000:]
    assert "camera bridge: source connected" in out and PASSWORD not in out + err
    assert_arrived(kafka, server.served, {"/digest.jpg": "pump-01"})
