"""The camera bridge's pure parts: JPEG checks, the choice of event time, backoff, the pending queue, safe URLs."""

from __future__ import annotations

import email.utils
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from connectors.ingest.camera import PendingQueue, http_cameras
from connectors.ingest.payloads import frame_event
from connectors.ingest.snapshots import backoff_s, check_jpeg, safe_url, snapshot_time
from fusewatch.core.errors import ConfigError, InvalidEventError
from fusewatch.core.plant import load_plant
from fusewatch.core.timeutil import NS_PER_S, parse_time

ASKED = parse_time("2026-12-06T12:00:00.5Z")


def photo(exif: Image.Exif | None = None) -> bytes:
    pixels = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) % 251).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85, **({} if exif is None else {"exif": exif}))
    return buffer.getvalue()


def exif_of(stamp: str, offset: str | None, subsec: str | None = None) -> Image.Exif:
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = stamp
    if offset is not None:
        ifd[0x9011] = offset
    if subsec is not None:
        ifd[0x9291] = subsec
    return exif


def test_a_whole_jpeg_passes_and_is_a_frame() -> None:
    body = photo()
    check_jpeg(body, "image/jpeg")
    check_jpeg(body + b"\r\n", "IMAGE/JPEG; charset=binary")  # trailing line end after EOI, as some cameras send
    event = frame_event("pump-01", "cam-1", ASKED, body)
    assert (event.width, event.height, event.encoding) == (64, 48, "jpeg")


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"<html>login</html>", "text/html", "content-type: text/html, not image/jpeg"),
    (b"\xff\xd8\xff", None, "content-type: missing, not image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "content-type: image/png, not image/jpeg"),
    (b"", "image/jpeg", "image: empty body"),
    (b"GIF89a", "image/jpeg", "image: not a JPEG (no SOI marker"),
    (None, "image/jpeg", "image: truncated JPEG (no EOI marker at the end"),
])
def test_what_is_not_a_whole_jpeg_is_refused_with_the_reason(body: bytes | None, content_type: str | None,
                                                             message: str) -> None:
    whole = photo()
    with pytest.raises(InvalidEventError) as caught:
        check_jpeg(whole[: len(whole) // 2] if body is None else body, content_type)
    assert str(caught.value).startswith(message)


def test_markers_right_but_header_unreadable_is_refused_by_the_frame() -> None:
    body = b"\xff\xd8\xff\xe0" + b"garbage" * 10 + b"\xff\xd9"
    check_jpeg(body, "image/jpeg")
    with pytest.raises(InvalidEventError, match=r"^image: cannot be read"):
        frame_event("pump-01", "cam-1", ASKED, body)


def test_event_time_prefers_x_timestamp_then_exif_then_last_modified_then_the_request() -> None:
    exif_body = photo(exif_of("2026:12:06 11:59:58", "+00:00", "25"))
    modified = email.utils.formatdate(ASKED / NS_PER_S - 10, usegmt=True)
    headers = {"x-timestamp": "2026-12-06T11:59:59.75Z", "Last-Modified": modified}
    assert snapshot_time(headers, exif_body, ASKED) == (parse_time("2026-12-06T11:59:59.75Z"), "x-timestamp")
    del headers["x-timestamp"]
    assert snapshot_time(headers, exif_body, ASKED) == (parse_time("2026-12-06T11:59:58.25Z"), "exif")
    assert snapshot_time(headers, photo(), ASKED) == (parse_time("2026-12-06T11:59:50Z"), "last-modified")
    assert snapshot_time({}, photo(), ASKED) == (ASKED, "request")


@pytest.mark.parametrize(("value", "expected"), [
    (str(ASKED), ASKED), (str(ASKED // 1000), ASKED), (str(ASKED // 1_000_000), ASKED),
    (str(ASKED // NS_PER_S - 1), parse_time("2026-12-06T11:59:59Z")), (f"{ASKED // NS_PER_S}.5", ASKED),
    ("2026-12-06T13:00:00.5+01:00", ASKED),
])
def test_x_timestamp_in_any_unit(value: str, expected: int) -> None:
    assert snapshot_time({"X-Timestamp": value}, b"", ASKED) == (expected, "x-timestamp")


def test_stamps_that_are_unreadable_local_or_far_off_are_not_believed() -> None:
    assert snapshot_time({"X-Timestamp": "yesterday"}, b"", ASKED) == (ASKED, "request")
    assert snapshot_time({"Last-Modified": "not a date"}, b"", ASKED) == (ASKED, "request")
    # EXIF without its offset is the camera's local time, of unknown zone
    assert snapshot_time({}, photo(exif_of("2026:12:06 11:59:58", None)), ASKED) == (ASKED, "request")
    # a camera clock an hour off, beyond max_skew_s
    assert snapshot_time({"X-Timestamp": "2026-12-06T13:00:00Z"}, b"", ASKED, max_skew_s=600) == (ASKED, "request")
    assert snapshot_time({"X-Timestamp": "2026-12-06T13:00:00Z"}, b"", ASKED, max_skew_s=7200)[1] == "x-timestamp"


def test_backoff_doubles_from_the_interval_and_is_capped() -> None:
    assert [backoff_s(n, 0.5, 3.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert backoff_s(5, 120.0, 60.0) == 120.0  # never faster than the camera's own interval
    assert backoff_s(200, 1.0, 60.0) == 60.0  # no overflow after a long outage


def test_pending_queue_keeps_the_newest_and_counts_drops() -> None:
    queue = PendingQueue(3)
    for item in range(5):
        queue.push(item)
    assert list(queue.items) == [2, 3, 4] and queue.dropped == 2
    first = queue.pop()
    queue.put_back(first)  # Kafka refused it: it goes back to the front, order kept
    assert list(queue.items) == [2, 3, 4] and queue.dropped == 2
    first = queue.pop()
    queue.push(5)
    queue.put_back(first)  # newer snapshots filled the queue meanwhile: the refused one is dropped
    assert list(queue.items) == [3, 4, 5] and queue.dropped == 3


def test_safe_url_hides_credentials() -> None:
    assert safe_url("http://cam-7.plant.local/axis-cgi/jpg/image.cgi?resolution=640x480") == (
        "http://cam-7.plant.local/axis-cgi/jpg/image.cgi?resolution=640x480")
    assert safe_url("https://admin:pw@[fe80::1]:8443/snapshot.cgi?user=admin&password=pw&token=t") == (
        "https://[fe80::1]:8443/snapshot.cgi?user=admin&password=***&token=***")


def test_http_cameras_of_the_plant_file_and_only(tmp_path: Path) -> None:
    path = tmp_path / "plant.toml"
    path.write_text("""
[[assets]]
id = "pump-01"
kind = "pump"
camera = { id = "cam-01", source = "http", url = "http://127.0.0.1:8080/a.jpg", interval_s = 5 }
[[assets]]
id = "pump-02"
kind = "pump"
camera.id = "cam-02"
camera.source = "http"
camera.url = "http://127.0.0.1:8080/b.jpg"
camera.auth = "digest"
camera.username = "viewer"
camera.password_env = "CAM02_PASSWORD"
[[assets]]
id = "motor-01"
kind = "motor"
camera = { id = "cam-03", source = "mqtt" }
""", encoding="utf-8")
    plant = load_plant(path)
    cameras = http_cameras(plant)
    assert [(asset, camera.id) for asset, camera in cameras] == [("pump-01", "cam-01"), ("pump-02", "cam-02")]
    assert [camera.id for _, camera in http_cameras(plant, ["cam-02"])] == ["cam-02"]
    with pytest.raises(ConfigError, match=r"--only: no http camera 'cam-03'.*known: cam-01, cam-02"):
        http_cameras(plant, ["cam-03"])
