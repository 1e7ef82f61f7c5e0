"""What plant payloads become: JSON, raw images or fusewatch's wire format → an input event (docs/connect-a-plant.md).

A bridge knows from where a payload came which asset and modality it belongs to (an MQTT topic, an OPC UA
node); :func:`event_from_payload` reads the payload into that asset's event, with the event time the source
gives. Payloads, by modality:

- ``vibration``: JSON ``{"ts": <RFC 3339 UTC> | <int ns>, "sample_rate_hz": 25600.0, "samples": [...]}``, or
  ``"samples_b64"`` (base64 of little-endian float32) instead of ``"samples"``; optional ``sensor_id``, ``unit``;
- ``frame``: raw JPEG or PNG bytes with the event time in ``ts`` (an MQTT v5 user property), or JSON
  ``{"ts": ..., "image_b64": "..."}``;
- ``log``: JSON ``{"ts": ..., "text": "...", "author": "..."}`` (author and ``kind`` optional);
- any modality: a fusewatch wire-format v1 message as is (its asset and kind must match where it came from).

Anything else raises :class:`~fusewatch.core.errors.InvalidEventError` naming the field, which the bridge turns
into a dead letter with the source coordinates:

>>> defaults = StreamDefaults(sensor_id="acc-1", unit="g", camera_id="cam-1")
>>> event = event_from_payload("vibration", "pump-01",
...     b'{"ts": "2026-12-01T00:00:00Z", "sample_rate_hz": 4.0, "samples": [0.5, -0.5, 0.25, 0.0]}', {}, defaults)
>>> event.asset_id, event.ts, event.samples.tolist()
('pump-01', 1796083200000000000, [0.5, -0.5, 0.25, 0.0])
>>> event_from_payload("log", "pump-01", b'{"ts": 1796083200000000000, "text": "  "}', {}, defaults)
Traceback (most recent call last):
...
fusewatch.core.errors.InvalidEventError: text: is blank
>>> event_from_payload("vibration", "pump-01", b'{"sample_rate_hz": 4.0, "samples": [1.0]}', {}, defaults)
Traceback (most recent call last):
...
fusewatch.core.errors.InvalidEventError: ts: missing (RFC 3339 UTC or integer nanoseconds)
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from fusewatch.core.codec import MAGIC, InputEvent, decode
from fusewatch.core.errors import InvalidEventError
from fusewatch.core.events import CameraFrame, MaintenanceLog, VibrationChunk, make_event
from fusewatch.core.plant import PlantModality

_EVENT_OF: dict[PlantModality, type] = {"vibration": VibrationChunk, "frame": CameraFrame, "log": MaintenanceLog}


@dataclass(frozen=True)
class StreamDefaults:
    """What a payload may leave out: the sensor id and unit of a vibration stream, the camera id, a log's author."""

    sensor_id: str = "acc-1"
    unit: str = "g"
    camera_id: str = "camera"
    author: str | None = None


def event_from_payload(modality: PlantModality, asset_id: str, payload: bytes, properties: Mapping[str, str],
                       defaults: StreamDefaults) -> InputEvent:
    """The event of ``asset_id``'s ``modality`` stream that ``payload`` holds (``properties``: MQTT user properties)."""
    if payload[:2] == MAGIC:
        return _wire(modality, asset_id, payload)
    if modality == "frame" and (payload.startswith(b"\xff\xd8\xff") or payload.startswith(b"\x89PNG\r\n\x1a\n")):
        if "ts" not in properties:
            raise InvalidEventError("ts", "a raw image needs its event time in the MQTT v5 user property 'ts'")
        return frame_event(asset_id, defaults.camera_id, _time(properties["ts"]), payload)
    fields = _json_object(payload)
    ts = _time(fields.pop("ts", None))
    if modality == "vibration":
        return _vibration(asset_id, ts, fields, defaults)
    if modality == "frame":
        image = _base64(fields.pop("image_b64", None), "image_b64")
        camera_id = fields.pop("camera_id", defaults.camera_id)
        _no_more(fields)
        return frame_event(asset_id, camera_id, ts, image)
    fields.setdefault("author", defaults.author)
    return make_event(MaintenanceLog, asset_id=asset_id, ts=ts, **fields)


def frame_event(asset_id: str, camera_id: str, ts: int, image: bytes) -> CameraFrame:
    """A camera frame of an encoded JPEG or PNG image; its size is read from the image header."""
    encoding = "png" if image.startswith(b"\x89PNG") else "jpeg"
    try:
        with Image.open(io.BytesIO(image)) as opened:
            width, height = opened.size
            if opened.format not in ("JPEG", "PNG"):
                raise InvalidEventError("image", f"is a {opened.format} image, not JPEG or PNG")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidEventError("image", f"cannot be read ({exc})") from None
    return make_event(CameraFrame, asset_id=asset_id, camera_id=camera_id, ts=ts, width=width, height=height,
                      encoding=encoding, data=image)


def _wire(modality: PlantModality, asset_id: str, payload: bytes) -> InputEvent:
    event = decode(payload)
    if not isinstance(event, _EVENT_OF[modality]):
        raise InvalidEventError("<message>", f"a {type(event).__name__} on a {modality} stream")
    if event.asset_id != asset_id:
        raise InvalidEventError("asset_id",
                                f"{event.asset_id!r} in the message, but the source is {asset_id!r}'s stream")
    return event


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEventError("<payload>", f"not JSON, an image or a fusewatch message ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidEventError("<payload>", f"expected a JSON object, got {type(value).__name__}")
    return value


def _time(value: object) -> int:
    if value is None:
        raise InvalidEventError("ts", "missing (RFC 3339 UTC or integer nanoseconds)")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)  # an MQTT user property is text
    if isinstance(value, (float, bool)):
        raise InvalidEventError("ts", "must be an RFC 3339 string or integer nanoseconds, not a float")
    return value  # type: ignore[return-value]  # the event's validator checks the rest


def _base64(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidEventError(field, "missing" if value is None else "must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEventError(field, f"not valid base64 ({exc})") from None


def _vibration(asset_id: str, ts: int, fields: dict[str, Any], defaults: StreamDefaults) -> VibrationChunk:
    if "samples" in fields and "samples_b64" in fields:
        raise InvalidEventError("samples", "give samples or samples_b64, not both")
    if "samples_b64" in fields:
        raw = _base64(fields.pop("samples_b64"), "samples_b64")
        if len(raw) % 4:
            raise InvalidEventError("samples_b64", f"{len(raw)} bytes is not a whole number of float32 samples")
        samples: Any = np.frombuffer(raw, dtype="<f4")
    else:
        samples = fields.pop("samples", None)
        if not isinstance(samples, list) or not all(isinstance(x, int | float) and not isinstance(x, bool)
                                                    for x in samples):
            raise InvalidEventError("samples", "missing" if samples is None else "must be a list of numbers")
    rate = fields.pop("sample_rate_hz", None)
    if isinstance(rate, int) and not isinstance(rate, bool):
        rate = float(rate)
    return make_event(VibrationChunk, asset_id=asset_id, ts=ts, sample_rate_hz=rate, samples=samples,
                      sensor_id=fields.pop("sensor_id", defaults.sensor_id), unit=fields.pop("unit", defaults.unit),
                      **fields)


def _no_more(fields: dict[str, Any]) -> None:
    if fields:
        raise InvalidEventError(next(iter(fields)), "unknown field")
