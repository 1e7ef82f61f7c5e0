"""Event contracts and the wire codec: valid input round-trips, bad input gets one typed error."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from PIL import Image

from fusewatch.core.codec import decode, decode_pixels, encode, encode_png
from fusewatch.core.errors import InvalidEventError
from fusewatch.core.events import CameraFrame, MaintenanceLog, Score, VibrationChunk, make_event
from fusewatch.core.timeutil import format_time, parse_time


def vibration(**overrides: object) -> VibrationChunk:
    fields: dict[str, object] = {
        "asset_id": "pump-01", "sensor_id": "de", "ts": "2026-11-30T00:00:00.123456789Z",
        "sample_rate_hz": 25_600.0, "unit": "g", "samples": np.linspace(-1, 1, 256, dtype=np.float32),
    }
    fields.update(overrides)
    return make_event(VibrationChunk, **fields)


def jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def frame(data: bytes, width: int = 32, height: int = 32, encoding: str = "jpeg") -> CameraFrame:
    return make_event(CameraFrame, asset_id="pump-01", camera_id="cam-1", ts=10, width=width, height=height,
                      encoding=encoding, data=data)


def raw_message(kind: int, header: dict[str, object], payload: bytes = b"") -> bytes:
    head = json.dumps(header).encode()
    return struct.pack("<2sBBI", b"FW", 1, kind, len(head)) + head + payload


def test_vibration_round_trip_keeps_nanoseconds_and_samples() -> None:
    chunk = vibration()
    back = decode(encode(chunk))
    assert isinstance(back, VibrationChunk)
    assert back.ts == parse_time("2026-11-30T00:00:00.123456789Z")
    assert format_time(back.ts).endswith(".123456789Z")
    np.testing.assert_array_equal(back.samples, chunk.samples)
    assert back.samples.dtype == np.float32


def test_frame_and_log_round_trip() -> None:
    pixels = np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1))
    event = frame(jpeg(pixels))
    back = decode(encode(event))
    assert isinstance(back, CameraFrame) and back.data == event.data
    assert np.abs(decode_pixels(back).astype(int) - pixels).max() < 8  # JPEG is lossy, but close
    png_back = decode(encode(frame(encode_png(pixels), encoding="png")))
    assert isinstance(png_back, CameraFrame)
    np.testing.assert_array_equal(decode_pixels(png_back), pixels)
    entry = make_event(MaintenanceLog, asset_id="pump-01", ts=5, text="brg noisy", kind="symptom")
    assert decode(encode(entry)) == entry


def test_frame_repr_never_shows_image_bytes() -> None:
    event = frame(jpeg(np.zeros((32, 32), dtype=np.uint8)))
    assert "\\x" not in repr(event) and "bytes" in repr(event)


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"samples": [0.0, float("nan")]}, "samples", "NaN or infinity"),
        ({"samples": [0.0, float("inf")]}, "samples", "NaN or infinity"),
        ({"samples": []}, "samples", "is empty"),
        ({"samples": np.zeros((2, 2))}, "samples", "one-dimensional"),
        ({"unit": "mm"}, "unit", "'g' or 'm/s^2'"),
        ({"asset_id": ""}, "asset_id", "at least 1 character"),
        ({"sample_rate_hz": -1.0}, "sample_rate_hz", "greater than 0"),
        ({"ts": "2026-11-30T00:00:00"}, "ts", "RFC 3339"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_invalid_vibration_names_the_field(overrides: dict[str, object], field: str, reason: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        vibration(**overrides)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_malformed_messages_give_typed_errors() -> None:
    good = encode(vibration())
    cases = {
        b"": ("<message>", "too short"),
        b"XX" + good[2:]: ("<message>", "bad magic"),
        good[:2] + b"\x09" + good[3:]: ("<message>", "version 9"),
        good[:3] + b"\x07" + good[4:]: ("<message>", "unknown message kind 7"),
        good[:8] + b"{not json" + good[17:]: ("<header>", "JSON"),
        good[:-10]: ("samples", "truncated"),
        good + b"\0\0\0\0": ("samples", "oversized"),
    }
    for raw, (field, reason) in cases.items():
        with pytest.raises(InvalidEventError) as caught:
            decode(raw)
        assert caught.value.field == field, raw[:20]
        assert reason in caught.value.reason


def test_nan_samples_on_the_wire_are_refused() -> None:
    header = {"asset_id": "pump-01", "sensor_id": "de", "ts": "2026-11-30T00:00:00Z", "sample_rate_hz": 100.0,
              "unit": "g", "n_samples": 2}
    with pytest.raises(InvalidEventError, match="samples: contains NaN"):
        decode(raw_message(1, header, np.array([1.0, np.nan], dtype="<f4").tobytes()))


def test_unknown_header_fields_are_refused() -> None:
    with pytest.raises(InvalidEventError) as caught:
        decode(raw_message(3, {"asset_id": "pump-01", "ts": "2026-11-30T00:00:00Z", "text": "ok", "mood": "happy"}))
    assert (caught.value.field, caught.value.reason) == ("mood", "unknown field")


def test_empty_truncated_and_mislabelled_frames_are_refused() -> None:
    good = jpeg(np.full((32, 32), 100, dtype=np.uint8))
    with pytest.raises(InvalidEventError, match=r"data: .*at least 1"):
        frame(b"")
    with pytest.raises(InvalidEventError, match="neither a PNG nor a JPEG"):
        frame(b"GIF89a....")
    with pytest.raises(InvalidEventError, match="data: truncated or corrupt jpeg"):
        decode_pixels(frame(good[: len(good) // 3]))
    with pytest.raises(InvalidEventError, match="image is 32x32, header says 64x32"):
        decode_pixels(frame(good, width=64))
    message = encode(frame(good))
    with pytest.raises(InvalidEventError, match="data: truncated: header says"):
        decode(message[:-5])


def test_blank_log_text_and_bad_kind_are_refused() -> None:
    with pytest.raises(InvalidEventError, match="text: is blank"):
        make_event(MaintenanceLog, asset_id="pump-01", ts=1, text="   ")
    with pytest.raises(InvalidEventError) as caught:
        make_event(MaintenanceLog, asset_id="pump-01", ts=1, text="ok", kind="gossip")
    assert caught.value.field == "kind"


def test_outputs_serialise_time_as_rfc3339() -> None:
    score = Score(asset_id="pump-01", window_start=0, window_end=60_000_000_000, fused=0.5, calibrated={},
                  raw={}, contributions={}, present={}, leading=None, top_features=[], warmup=True,
                  model_version="v", run_id="r")
    as_json = json.loads(score.model_dump_json())
    assert as_json["window_end"] == "1970-01-01T00:01:00Z"
    assert Score.model_validate_json(score.model_dump_json()) == score
