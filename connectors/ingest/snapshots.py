"""What a camera snapshot must be, and when it was taken (the camera bridge's checks, docs/ingest-camera.md).

>>> check_jpeg(b"<html>login</html>", "text/html; charset=utf-8")
Traceback (most recent call last):
...
fusewatch.core.errors.InvalidEventError: content-type: text/html, not image/jpeg
>>> [backoff_s(n, 5.0, 60.0) for n in range(0, 6)]
[5.0, 5.0, 10.0, 20.0, 40.0, 60.0]
>>> safe_url("http://admin:s3cret@10.0.0.7/snap.jpg?pwd=s3cret&res=hd")
'http://10.0.0.7/snap.jpg?pwd=***&res=hd'
"""

from __future__ import annotations

import email.utils
import io
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from PIL import Image

from fusewatch.core.errors import InvalidEventError
from fusewatch.core.timeutil import NS_PER_S, parse_time

JPEG_TYPES = ("image/jpeg", "image/jpg", "image/pjpeg")
_SECRET_KEYS = re.compile(r"pass|pwd|token|secret|key|auth|sig", re.IGNORECASE)
_EXIF_IFD, _DATETIME_ORIGINAL, _OFFSET_ORIGINAL, _SUBSEC_ORIGINAL = 0x8769, 0x9003, 0x9011, 0x9291


def safe_url(url: str) -> str:
    """``url`` without user info and with the values of password-like query keys masked (for logs and letters)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    query = "&".join(f"{key}={'***' if _SECRET_KEYS.search(key) else value}" if sep else key
                     for key, sep, value in (pair.partition("=") for pair in parts.query.split("&") if pair))
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def check_jpeg(body: bytes, content_type: str | None) -> None:
    """Raise :class:`InvalidEventError` unless ``body`` is a whole JPEG served as one.

    >>> check_jpeg(b"\\xff\\xd8\\xff\\xe0" + bytes(100), "image/jpeg")
    Traceback (most recent call last):
    ...
    fusewatch.core.errors.InvalidEventError: image: truncated JPEG (no EOI marker at the end; 104 bytes)
    """
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind not in JPEG_TYPES:
        raise InvalidEventError("content-type", f"{kind or 'missing'}, not image/jpeg")
    if not body:
        raise InvalidEventError("image", "empty body")
    if not body.startswith(b"\xff\xd8\xff"):
        raise InvalidEventError("image", f"not a JPEG (no SOI marker; starts with {body[:8]!r})")
    if not body.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        raise InvalidEventError("image", f"truncated JPEG (no EOI marker at the end; {len(body)} bytes)")


def _x_timestamp(value: str) -> int:
    """RFC 3339, or a number of seconds, milliseconds, microseconds or nanoseconds since the epoch (by size)."""
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        number = int(text)
        for limit, factor in ((10**17, 1), (10**14, 1_000), (10**11, 1_000_000)):
            if number >= limit:
                return number * factor
        return number * NS_PER_S
    if re.fullmatch(r"\d+\.\d+", text):
        seconds, fraction = text.split(".")
        return int(seconds) * NS_PER_S + int(fraction[:9].ljust(9, "0"))
    return parse_time(text)


def _exif_time(image: bytes) -> int | None:
    """DateTimeOriginal (+ SubSecTimeOriginal) of the JPEG's EXIF, only with its OffsetTimeOriginal (else local)."""
    with Image.open(io.BytesIO(image)) as opened:
        exif = opened.getexif().get_ifd(_EXIF_IFD)
    stamp, offset = exif.get(_DATETIME_ORIGINAL), exif.get(_OFFSET_ORIGINAL)
    if not isinstance(stamp, str) or not isinstance(offset, str):
        return None
    day, _, clock = stamp.strip().partition(" ")
    subsec = str(exif.get(_SUBSEC_ORIGINAL, "")).strip()
    fraction = f".{subsec}" if subsec.isdigit() else ""
    return parse_time(f"{day.replace(':', '-')}T{clock}{fraction}{offset.strip()}")


def snapshot_time(headers: Mapping[str, str], image: bytes, requested_ns: int,
                  max_skew_s: float = 600.0) -> tuple[int, str]:
    """The event time of a snapshot and where it came from.

    In order: the ``X-Timestamp`` header, the EXIF DateTimeOriginal (with its offset), the ``Last-Modified``
    header; the first that parses and lies within ``max_skew_s`` of ``requested_ns`` (a camera whose clock is
    off is not believed), else ``requested_ns``, the moment the camera was asked for "now".

    >>> asked = 1796083200_500_000_000
    >>> snapshot_time({"X-Timestamp": "1796083200.25"}, b"", asked)
    (1796083200250000000, 'x-timestamp')
    >>> snapshot_time({"Last-Modified": "Tue, 01 Dec 2026 00:00:00 GMT"}, b"", asked)
    (1796083200000000000, 'last-modified')
    >>> snapshot_time({"Last-Modified": "Tue, 01 Dec 2020 00:00:00 GMT"}, b"", asked)
    (1796083200500000000, 'request')
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    candidates: list[tuple[str, Any]] = [
        ("x-timestamp", lambda: _x_timestamp(lowered["x-timestamp"]) if "x-timestamp" in lowered else None),
        ("exif", lambda: _exif_time(image) if image else None),
        ("last-modified", lambda: parse_time(email.utils.parsedate_to_datetime(lowered["last-modified"]))
         if "last-modified" in lowered else None),
    ]
    for name, read in candidates:
        try:
            ts = read()
        except (ValueError, TypeError, OSError, SyntaxError):
            continue  # an unreadable stamp is not believed; the next one is tried
        if ts is not None and abs(ts - requested_ns) <= max_skew_s * NS_PER_S:
            return int(ts), name
    return requested_ns, "request"


def backoff_s(failures: int, interval_s: float, max_s: float) -> float:
    """Seconds to the next poll after ``failures`` consecutive failures: the interval, then doubling, capped."""
    if failures <= 1:
        return interval_s
    return min(max(max_s, interval_s), interval_s * 2.0 ** (failures - 1))
