"""Wire codec for the input topics, and JSON for the output topics.

Input messages share one envelope (see ``docs/wire-format.md``)::

    0  2 bytes  magic b"FW"
    2  1 byte   format version (1)
    3  1 byte   kind: 1 vibration, 2 camera frame, 3 maintenance log, 4 vibration features
    4  4 bytes  header length H, unsigned little-endian
    8  H bytes  UTF-8 JSON header (the event's fields, ``ts`` as RFC 3339 with nanoseconds)
    8+H ...     payload: little-endian float32 samples, the encoded image, or float64 feature values (in the
                order of the header's ``names``); empty for logs

>>> import numpy as np
>>> from fusewatch.core.events import make_event
>>> chunk = make_event(VibrationChunk, asset_id="pump-1", sensor_id="de", ts="2026-11-30T00:00:00.5Z",
...                    sample_rate_hz=4.0, unit="g", samples=np.arange(4, dtype=np.float32))
>>> raw = encode(chunk)
>>> raw[:4], len(raw)
(b'FW\\x01\\x01', 138)
>>> back = decode(raw)
>>> back.ts == chunk.ts, back.samples.tolist()
(True, [0.0, 1.0, 2.0, 3.0])
>>> decode(raw[:-3])
Traceback (most recent call last):
...
fusewatch.core.errors.InvalidEventError: samples: truncated: header says 4 samples (16 bytes), payload has 13 bytes
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

from fusewatch.core.errors import InvalidEventError
from fusewatch.core.events import (
    MAX_FEATURES,
    CameraFrame,
    MaintenanceLog,
    VibrationChunk,
    VibrationFeatureSet,
    make_event,
)
from fusewatch.core.timeutil import format_time

InputEvent = VibrationChunk | VibrationFeatureSet | CameraFrame | MaintenanceLog

MAGIC = b"FW"
VERSION = 1
KIND_VIBRATION, KIND_FRAME, KIND_LOG, KIND_FEATURES = 1, 2, 3, 4
_PREFIX = struct.Struct("<2sBBI")
_LE_FLOAT32 = np.dtype("<f4")
_LE_FLOAT64 = np.dtype("<f8")
MAX_HEADER_BYTES = 64 * 1024


def encode(event: InputEvent) -> bytes:
    """Encode an input event into the binary envelope."""
    if isinstance(event, VibrationChunk):
        header: dict[str, Any] = {
            "asset_id": event.asset_id,
            "sensor_id": event.sensor_id,
            "ts": format_time(event.ts),
            "sample_rate_hz": event.sample_rate_hz,
            "unit": event.unit,
            "n_samples": int(event.samples.size),
        }
        return join_envelope(KIND_VIBRATION, header, event.samples.astype(_LE_FLOAT32, copy=False).tobytes())
    if isinstance(event, VibrationFeatureSet):
        header = {
            "asset_id": event.asset_id,
            "sensor_id": event.sensor_id,
            "ts": format_time(event.ts),
            "sample_rate_hz": event.sample_rate_hz,
            "unit": event.unit,
            "n_samples": event.n_samples,
            "features_version": event.features_version,
            "names": list(event.features),
        }
        values = np.fromiter(event.features.values(), dtype=np.float64, count=len(event.features))
        return join_envelope(KIND_FEATURES, header, values.astype(_LE_FLOAT64, copy=False).tobytes())
    if isinstance(event, CameraFrame):
        header = {
            "asset_id": event.asset_id,
            "camera_id": event.camera_id,
            "ts": format_time(event.ts),
            "width": event.width,
            "height": event.height,
            "encoding": event.encoding,
            "n_bytes": len(event.data),
        }
        return join_envelope(KIND_FRAME, header, event.data)
    if isinstance(event, MaintenanceLog):
        header = event.model_dump(mode="json", exclude_none=True)
        return join_envelope(KIND_LOG, header, b"")
    raise TypeError(f"not an input event: {type(event).__name__}")


def join_envelope(kind: int, header: dict[str, Any], payload: bytes) -> bytes:
    """The message for a kind, a JSON header and a payload (the inverse of :func:`split_envelope`)."""
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    return _PREFIX.pack(MAGIC, VERSION, kind, len(head)) + head + payload



def split_envelope(raw: bytes) -> tuple[int, dict[str, Any], bytes]:
    """The kind, JSON header and payload of a message, the event itself not validated (recordings keep
    invalid events as they are); raise :class:`InvalidEventError` when the envelope cannot be read.

    >>> kind, header, payload = split_envelope(join_envelope(3, {"asset_id": "p", "ts": 0, "text": "ok"}, b""))
    >>> kind, header["text"], payload
    (3, 'ok', b'')
    """
    raw = _as_bytes(raw)
    kind, header, start = _read_envelope(raw)
    return kind, header, raw[start:]


def decode(raw: bytes) -> InputEvent:
    """Decode and validate one input message; raise :class:`InvalidEventError` naming the field.

    The samples are a view of a copy of the payload, not of ``raw`` itself: a view at the header's offset
    would be unaligned, and numpy's float sums then round differently from those on an aligned copy (a
    restored checkpoint would no longer score exactly as the uninterrupted stream).
    """
    raw = _as_bytes(raw)
    kind, header, start = _read_envelope(raw)
    if kind == KIND_VIBRATION:
        return _decode_vibration(header, raw[start:])
    if kind == KIND_FEATURES:
        return _decode_features(header, raw[start:])
    if kind == KIND_FRAME:
        return _decode_frame(header, raw[start:])
    if kind == KIND_LOG:
        if len(raw) > start:
            raise InvalidEventError("<payload>", f"a maintenance log has no payload, found {len(raw) - start} bytes")
        return make_event(MaintenanceLog, **header)
    raise InvalidEventError("<message>", f"unknown message kind {kind}")


def _as_bytes(raw: Any) -> bytes:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise InvalidEventError("<message>", f"expected bytes, got {type(raw).__name__}")
    return raw if type(raw) is bytes else bytes(raw)


def _read_envelope(raw: bytes) -> tuple[int, dict[str, Any], int]:
    """The kind, the JSON header and where the payload starts."""
    if len(raw) < _PREFIX.size:
        raise InvalidEventError("<message>", f"too short for the envelope ({len(raw)} bytes)")
    magic, version, kind, head_len = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        raise InvalidEventError("<message>", "not a fusewatch message (bad magic)")
    if version != VERSION:
        raise InvalidEventError("<message>", f"unsupported format version {version}")
    if head_len > MAX_HEADER_BYTES or _PREFIX.size + head_len > len(raw):
        raise InvalidEventError("<header>", f"header length {head_len} exceeds the message")
    try:
        header = json.loads(raw[_PREFIX.size : _PREFIX.size + head_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEventError("<header>", f"not valid UTF-8 JSON ({exc})") from None
    if not isinstance(header, dict):
        raise InvalidEventError("<header>", "must be a JSON object")
    return kind, header, _PREFIX.size + head_len


def _take_count(header: dict[str, Any], key: str) -> int:
    count = header.pop(key, None)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise InvalidEventError(key, "missing or not a non-negative integer")
    return count


def _with_payload(header: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    """The event's fields: the header's and the payload's ``field``, which the header must not carry itself."""
    if field in header:
        raise InvalidEventError(field, "belongs in the payload, not in the header")
    return {**header, field: value}


def _decode_vibration(header: dict[str, Any], payload: bytes) -> VibrationChunk:
    n_samples = _take_count(header, "n_samples")
    expected = n_samples * _LE_FLOAT32.itemsize
    if len(payload) != expected:
        state = "truncated" if len(payload) < expected else "oversized"
        raise InvalidEventError(
            "samples",
            f"{state}: header says {n_samples} samples ({expected} bytes), payload has {len(payload)} bytes",
        )
    samples = np.frombuffer(payload, dtype=_LE_FLOAT32)
    return make_event(VibrationChunk, **_with_payload(header, "samples", samples))


def _decode_features(header: dict[str, Any], payload: bytes) -> VibrationFeatureSet:
    names = header.pop("names", None)
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise InvalidEventError("names", "missing or not a list of feature names")
    if len(names) > MAX_FEATURES:
        raise InvalidEventError("names", f"has {len(names)} features, more than {MAX_FEATURES}")
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise InvalidEventError("names", f"feature {duplicate[:64]!r} appears twice")
    expected = len(names) * _LE_FLOAT64.itemsize
    if len(payload) != expected:
        state = "truncated" if len(payload) < expected else "oversized"
        raise InvalidEventError(
            "features",
            f"{state}: header names {len(names)} features ({expected} bytes), payload has {len(payload)} bytes",
        )
    values = np.frombuffer(payload, dtype=_LE_FLOAT64).tolist()
    return make_event(VibrationFeatureSet, **_with_payload(header, "features", dict(zip(names, values, strict=True))))


def _decode_frame(header: dict[str, Any], payload: bytes) -> CameraFrame:
    n_bytes = _take_count(header, "n_bytes")
    if len(payload) != n_bytes:
        state = "truncated" if len(payload) < n_bytes else "oversized"
        raise InvalidEventError("data", f"{state}: header says {n_bytes} bytes, payload has {len(payload)} bytes")
    return make_event(CameraFrame, **_with_payload(header, "data", payload))


def decode_pixels(frame: CameraFrame) -> np.ndarray:
    """Decode a frame's image into a 2-D ``uint8`` grayscale array, checking it against the header.

    JPEG goes through libjpeg-turbo directly (simplejpeg: a third of Pillow's time for a 128x128 frame, and no
    per-image Python plugin machinery); other encodings through Pillow.
    """
    try:
        if frame.encoding == "jpeg":
            pixels: np.ndarray = simplejpeg.decode_jpeg(frame.data, colorspace="GRAY")[:, :, 0]
        else:
            with Image.open(io.BytesIO(frame.data)) as image:
                image.load()
                gray = image if image.mode == "L" else image.convert("L")
                pixels = np.asarray(gray, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidEventError("data", f"truncated or corrupt {frame.encoding} image ({exc})") from None
    if pixels.shape != (frame.height, frame.width):
        raise InvalidEventError(
            "data", f"image is {pixels.shape[1]}x{pixels.shape[0]}, header says {frame.width}x{frame.height}"
        )
    return pixels


def encode_png(pixels: np.ndarray) -> bytes:
    """Encode a 2-D ``uint8`` array as a grayscale PNG (fast compression)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), mode="L").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
