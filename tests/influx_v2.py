"""An InfluxDB 2.x stand-in that checks the v2 write API's wire contract on every request.

No InfluxDB 2.x server can run on this machine (docs/influxdb.md), so the v2 sink is tested against this local
HTTP server instead. It accepts a write only when it is exactly what InfluxDB 2.x expects — ``POST
/api/v2/write`` with the query ``org``, ``bucket`` and ``precision=ns`` and nothing else, ``Authorization: Token
…``, ``Content-Encoding: gzip``, a ``text/plain`` body that parses as line protocol with nanosecond timestamps —
and answers anything else 400, recording why in ``violations``. Accepted points are stored the way InfluxDB
stores them: a point with the same measurement, tag set and time replaces the stored one.

``answers`` queues answers for the next writes (status, headers); while ``unavailable`` is set every write is
answered 503 with ``Retry-After: 1``, as a server that is restarting.
"""

from __future__ import annotations

import gzip
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.loopback import QuietHandler, serving

FieldValue = float | int | bool | str
PointKey = tuple[str, tuple[tuple[str, str], ...], int]


@dataclass(frozen=True)
class Point:
    """One point of line protocol."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time: int

    @property
    def key(self) -> PointKey:
        return self.measurement, tuple(sorted(self.tags.items())), self.time


def _split(text: str, separator: str) -> list[str]:
    """Split at ``separator`` where it is neither escaped with a backslash nor inside a double-quoted string."""
    parts, current, quoted, index = [], [], False, 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    if quoted:
        raise ValueError("unterminated string")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out, index = [], 0
    while index < len(text):
        if text[index] == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def _value(text: str) -> FieldValue:
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return _unescape(text[1:-1])
    if text in ("true", "false"):
        return text == "true"
    if text.endswith("i"):
        return int(text[:-1])
    return float(text)


def parse_line(line: str) -> Point:
    """Parse one line of line protocol (``ValueError`` when it is not one).

    >>> point = parse_line('m,asset_id=pump\\\\ 1 fused=0.5,leading="a \\\\"b\\\\"",warmup=false,n=3i 60')
    >>> point.measurement, point.tags, point.time
    ('m', {'asset_id': 'pump 1'}, 60)
    >>> point.fields
    {'fused': 0.5, 'leading': 'a "b"', 'warmup': False, 'n': 3}
    """
    sections = _split(line, " ")
    if len(sections) != 3:
        raise ValueError(f"expected measurement+tags, fields and a timestamp: {line!r}")
    series, field_text, time_text = sections
    measurement, *tag_texts = _split(series, ",")
    tags = {}
    for tag in tag_texts:
        key, value = _split(tag, "=")
        tags[_unescape(key)] = _unescape(value)
    fields: dict[str, FieldValue] = {}
    for item in _split(field_text, ","):
        key, _, value = item.partition("=")
        fields[_unescape(key)] = _value(value)
    if not measurement or not fields:
        raise ValueError(f"a point needs a measurement and a field: {line!r}")
    return Point(_unescape(measurement), tags, fields, int(time_text))


@dataclass
class InfluxV2Double:
    """The state of the stand-in server: what it was sent, what it stores, what broke the contract."""

    org: str = "plant"
    bucket: str = "fusewatch"
    token: str = "s3cret"
    url: str = ""
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    unavailable: bool = False
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    points: dict[PointKey, Point] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stored(self, measurement: str) -> list[Point]:
        """The stored points of ``measurement``, in time order."""
        with self.lock:
            return sorted((p for p in self.points.values() if p.measurement == measurement), key=lambda p: p.key)

    def _problem(self, path: str, headers: dict[str, str], body: bytes) -> tuple[str | None, list[Point]]:
        url = urllib.parse.urlsplit(path)
        expected = {"org": [self.org], "bucket": [self.bucket], "precision": ["ns"]}
        if url.path != "/api/v2/write" or urllib.parse.parse_qs(url.query) != expected:
            return f"not the v2 write endpoint with org, bucket and precision=ns: {path}", []
        if headers.get("authorization") != f"Token {self.token}":
            return "no 'Authorization: Token …' header with the token", []
        if headers.get("content-encoding") != "gzip" or not headers.get("content-type", "").startswith("text/plain"):
            return "the body is not gzip-encoded text/plain", []
        try:
            lines = gzip.decompress(body).decode().split("\n")
            return None, [parse_line(line) for line in lines]
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return f"the body is not line protocol: {exc}", []

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        """Check one write and store its points; the status and headers to answer with."""
        with self.lock:
            self.requests.append(("POST", path, headers, body))
            problem, points = self._problem(path, headers, body)
            if problem is not None:
                self.violations.append(problem)
                return 400, {}
            if self.unavailable:
                return 503, {"Retry-After": "1"}
            status, extra = self.answers.pop(0) if self.answers else (204, {})
            if status == 204:
                self.points.update((point.key, point) for point in points)
            return status, extra


@contextmanager
def influx_v2_double(**settings: Any) -> Iterator[InfluxV2Double]:
    """Serve an :class:`InfluxV2Double` on 127.0.0.1 for the duration of the block."""
    state = InfluxV2Double(**settings)

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # /ping
            self.send_response(204)
            self.send_header("X-Influxdb-Version", "v2.7.11")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra = state.answer(self.path, headers, body)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            payload = b'{"code":"invalid","message":"bad line"}' if status >= 400 else b""
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    with serving(Handler) as port:
        state.url = f"http://127.0.0.1:{port}"
        yield state
