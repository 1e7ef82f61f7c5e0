"""Plant payloads → input events: every accepted form gives the same event; every bad one names its field."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from connectors.ingest.payloads import StreamDefaults, event_from_payload
from fusewatch.core.codec import encode
from fusewatch.core.errors import InvalidEventError
from fusewatch.core.events import CameraFrame, MaintenanceLog, VibrationChunk, make_event
from fusewatch.core.timeutil import format_time

TS = 1_796_083_200_123_456_789
DEFAULTS = StreamDefaults(sensor_id="de", unit="g", camera_id="cam-01", author="bridge")


def jpeg(width: int = 32, height: int = 24) -> bytes:
    pixels = (np.arange(width * height * 3) % 251).astype(np.uint8).reshape(height, width, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_vibration_as_a_number_list_base64_float32_or_the_wire_format_is_one_event() -> None:
    samples = np.random.default_rng(1).normal(size=256).astype(np.float32)
    as_list = json.dumps({"ts": format_time(TS), "sample_rate_hz": 25600, "samples": samples.tolist()}).encode()
    as_b64 = json.dumps({"ts": TS, "sample_rate_hz": 25600.0,
                         "samples_b64": base64.b64encode(samples.astype("<f4").tobytes()).decode()}).encode()
    wire = encode(make_event(VibrationChunk, asset_id="pump-01", sensor_id="de", ts=TS, sample_rate_hz=25600.0,
                             unit="g", samples=samples))
    events = [event_from_payload("vibration", "pump-01", payload, {}, DEFAULTS) for payload in (as_list, as_b64, wire)]
    for event in events:
        assert isinstance(event, VibrationChunk)
        assert (event.asset_id, event.ts, event.sensor_id, event.unit) == ("pump-01", TS, "de", "g")
        assert event.samples.tobytes() == samples.tobytes()


def test_a_frame_as_raw_bytes_with_a_ts_property_or_as_json() -> None:
    image = jpeg()
    raw = event_from_payload("frame", "pump-01", image, {"ts": str(TS)}, DEFAULTS)
    wrapped = event_from_payload("frame", "pump-01", json.dumps(
        {"ts": format_time(TS), "image_b64": base64.b64encode(image).decode()}).encode(), {}, DEFAULTS)
    for event in (raw, wrapped):
        assert isinstance(event, CameraFrame)
        assert (event.ts, event.width, event.height, event.encoding, event.camera_id) == (TS, 32, 24, "jpeg",
                                                                                            "cam-01")
        assert event.data == image


def test_a_log_entry_takes_the_streams_author_unless_it_names_one() -> None:
    entry = event_from_payload("log", "pump-01", json.dumps({"ts": TS, "text": "bearing noisy"}).encode(), {},
                               DEFAULTS)
    named = event_from_payload("log", "pump-01", json.dumps(
        {"ts": TS, "text": "replaced seal", "author": "kim", "kind": "repair"}).encode(), {}, DEFAULTS)
    assert isinstance(entry, MaintenanceLog) and entry.author == "bridge" and entry.text == "bearing noisy"
    assert isinstance(named, MaintenanceLog) and (named.author, named.kind) == ("kim", "repair")


@pytest.mark.parametrize(("modality", "payload", "properties", "message"), [
    ("vibration", b"\x00\x01garbage", {}, "<payload>: not JSON, an image or a fusewatch message"),
    ("vibration", b"[1, 2]", {}, "<payload>: expected a JSON object, got list"),
    ("vibration", b'{"ts": 5, "sample_rate_hz": 100.0}', {}, "samples: missing"),
    ("vibration", b'{"ts": 5, "sample_rate_hz": 100.0, "samples": [1, "x"]}', {}, "samples: must be a list of numbers"),
    ("vibration", b'{"ts": 5, "sample_rate_hz": 100.0, "samples_b64": "AAA"}', {}, "samples_b64: not valid base64"),
    ("vibration", b'{"ts": 5, "sample_rate_hz": 100.0, "samples_b64": "AAAAAAA="}', {},
     "samples_b64: 5 bytes is not a whole number of float32 samples"),
    ("vibration", b'{"ts": 5.5, "sample_rate_hz": 100.0, "samples": [1.0]}', {}, "ts: must be an RFC 3339 string"),
    ("vibration", b'{"ts": "2026-12-01 00:00", "sample_rate_hz": 100.0, "samples": [1.0]}', {},
     "ts: not an RFC 3339 timestamp with offset"),
    ("vibration", b'{"ts": 5, "sample_rate_hz": -1.0, "samples": [1.0]}', {}, "sample_rate_hz: Input should be"),
    ("vibration", b'{"ts": 5, "sample_rate_hz": 100.0, "samples": [1.0], "rpm": 3}', {}, "rpm: unknown field"),
    ("frame", b"\xff\xd8\xff\xe0 not really", {}, "ts: a raw image needs its event time"),
    ("frame", b"\xff\xd8\xff\xe0 not really", {"ts": "5"}, "image: cannot be read"),
    ("frame", b'{"ts": 5}', {}, "image_b64: missing"),
    ("log", b'{"ts": 5, "text": ""}', {}, "text: String should have at least 1 character"),
])
def test_bad_payloads_name_the_field_and_the_reason(modality, payload, properties, message) -> None:
    with pytest.raises(InvalidEventError) as caught:
        event_from_payload(modality, "pump-01", payload, properties, DEFAULTS)
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_wire_message_must_belong_to_the_stream_it_came_from() -> None:
    entry = encode(make_event(MaintenanceLog, asset_id="pump-02", ts=TS, text="ok"))
    with pytest.raises(InvalidEventError, match="'pump-02' in the message, but the source is 'pump-01''s stream"):
        event_from_payload("log", "pump-01", entry, {}, DEFAULTS)
    with pytest.raises(InvalidEventError, match="a MaintenanceLog on a vibration stream"):
        event_from_payload("vibration", "pump-02", entry, {}, DEFAULTS)
